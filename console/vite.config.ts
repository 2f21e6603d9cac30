// The console is a static bundle the node serves: assets under /console/ (hashed, cached for a year),
// index.html at / and at every console path. No CDN: fonts are the system's, everything else is bundled.
import { defineConfig } from 'vite';

export default defineConfig({
  root: new URL('.', import.meta.url).pathname,
  base: '/console/',
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic' } },
  // `npx vite console` for hand work: hot reload at /console/, the API of a node on the default port.
  server: { proxy: { '/v1': 'http://127.0.0.1:8080' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 1024,
  },
});
