import { URL, URLSearchParams } from 'whatwg-url';
import { defineGlobal } from './00-base.ts';

defineGlobal('URL', URL);
defineGlobal('URLSearchParams', URLSearchParams);
