// Shared handler logic for every benchmark target. Plain JavaScript (no TypeScript syntax) so that
// workerd and the Continuum isolate tier run the esbuild bundle of it unchanged, and the native Node
// target imports the very same functions.
import Mustache from 'mustache';

// SeBS 110.dynamic-html in spirit: a user name, the current time and N random numbers rendered into an
// HTML list through a logic-less template.
const TEMPLATE = `<!DOCTYPE html>
<html>
  <head>
    <meta charset="utf-8">
    <title>Randomly generated data.</title>
  </head>
  <body>
    <p>Welcome {{username}}!</p>
    <p>Data generated at: {{cur_time}}!</p>
    <p>Requested random numbers:</p>
    <ul>
      {{#random_numbers}}
      <li>{{.}}</li>
      {{/random_numbers}}
    </ul>
  </body>
</html>
`;

Mustache.parse(TEMPLATE);

export const DEFAULT_ITEMS = 1000;

/** Renders the dynamic HTML page; `items` is clamped to 1..10000. */
export function renderHtml(username, items) {
  const n = Math.min(Math.max(Number.isFinite(items) ? Math.trunc(items) : DEFAULT_ITEMS, 1), 10000);
  const randomNumbers = new Array(n);
  for (let i = 0; i < n; i++) randomNumbers[i] = Math.floor(Math.random() * 1000000);
  return Mustache.render(TEMPLATE, {
    username: username || 'bench',
    cur_time: new Date().toISOString(),
    random_numbers: randomNumbers,
  });
}

/** Reads `?user=` and `?items=` from a request path or URL. */
export function htmlParams(searchParams) {
  const items = searchParams.get('items');
  return { username: searchParams.get('user') || 'bench', items: items === null ? DEFAULT_ITEMS : Number(items) };
}
