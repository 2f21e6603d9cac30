import { TextEncoder, TextDecoder, TextEncoderStream, TextDecoderStream } from '@exodus/bytes/encoding-lite.js';
import { defineGlobal } from './00-base.ts';

defineGlobal('TextEncoder', TextEncoder);
defineGlobal('TextDecoder', TextDecoder);
defineGlobal('TextEncoderStream', TextEncoderStream);
defineGlobal('TextDecoderStream', TextDecoderStream);
