import { defineConfig } from 'vite';

// The app is embedded in the control plane (web/embed.go serves dist/app),
// so it is built for the root path and never loads anything from another
// origin: Monaco and its workers are files of this bundle.
export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist/app',
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 6000,
  },
  worker: { format: 'es' },
  server: {
    proxy: { '/api': 'http://127.0.0.1:8080', '/git': 'http://127.0.0.1:8080' },
  },
});
