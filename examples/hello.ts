// Workers-style fetch handler: GET /fn/hello/?name=you
interface Env {
  GREETING?: string;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const name = url.searchParams.get('name') ?? 'world';
    return Response.json({ message: `${env.GREETING ?? 'Hello'}, ${name}!`, path: url.pathname });
  },
};
