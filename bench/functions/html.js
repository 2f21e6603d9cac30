// warm_html function (fetch form, for Continuum and workerd): SeBS-style dynamic HTML, 1000 items.
import { htmlParams, renderHtml } from './render.js';

export default {
  fetch(request) {
    const { username, items } = htmlParams(new URL(request.url).searchParams);
    return new Response(renderHtml(username, items), { headers: { 'content-type': 'text/html; charset=utf-8' } });
  },
};
