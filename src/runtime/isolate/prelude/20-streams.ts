import * as streams from 'web-streams-polyfill';
import { defineGlobal } from './00-base.ts';

for (const [name, value] of Object.entries(streams)) {
  if (typeof value === 'function') defineGlobal(name, value);
}
