// warm_hello / cold_start / density function (fetch form, for Continuum and workerd).
import { HELLO_BODY } from './hello-body.js';

export default {
  fetch() {
    return new Response(HELLO_BODY, { headers: { 'content-type': 'text/plain; charset=utf-8' } });
  },
};
