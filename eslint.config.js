// Lint keeps the architecture: imports point one way (ARCHITECTURE §3) and only entry points read the
// environment. Each layer lists the layers it must not import.
import tseslint from 'typescript-eslint';

const layers = {
  core: ['store', 'build', 'runtime', 'drivers', 'scheduler', 'events', 'security', 'telemetry', 'gateway', 'api', 'node', 'cli'],
  runtime: ['core', 'store', 'build', 'drivers', 'scheduler', 'events', 'security', 'telemetry', 'gateway', 'api', 'node', 'cli'],
  drivers: ['store', 'build', 'scheduler', 'events', 'security', 'telemetry', 'gateway', 'api', 'node', 'cli'],
  store: ['build', 'runtime', 'drivers', 'scheduler', 'events', 'security', 'telemetry', 'gateway', 'api', 'node', 'cli'],
  build: ['store', 'runtime', 'drivers', 'scheduler', 'events', 'security', 'telemetry', 'gateway', 'api', 'node', 'cli'],
  scheduler: ['build', 'runtime', 'drivers', 'events', 'security', 'telemetry', 'gateway', 'api', 'node', 'cli'],
  telemetry: ['build', 'runtime', 'drivers', 'scheduler', 'events', 'security', 'gateway', 'api', 'node', 'cli'],
  security: ['build', 'runtime', 'drivers', 'scheduler', 'events', 'telemetry', 'gateway', 'api', 'node', 'cli'],
  events: ['build', 'runtime', 'drivers', 'gateway', 'api', 'node', 'cli'],
  gateway: ['build', 'runtime', 'drivers', 'api', 'node', 'cli'],
  api: ['runtime', 'drivers', 'gateway', 'node', 'cli'],
  node: ['cli'],
  cli: ['runtime', 'drivers', 'store', 'build', 'scheduler', 'gateway', 'telemetry', 'api'],
};

const boundaryConfigs = Object.entries(layers).map(([layer, banned]) => ({
  files: [`src/${layer}/**/*.ts`],
  ignores: ['**/*.test.ts'],
  rules: {
    'no-restricted-imports': ['error', {
      patterns: banned.map((b) => ({ group: [`**/${b}/*`, `**/${b}/**`, `../${b}`], message: `${layer} must not import ${b} (ARCHITECTURE §3)` })),
    }],
  },
}));

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.continuum/**', 'console/dist/**', 'test/fixtures/**', 'examples/**', 'src/runtime/isolate/dist/**', 'bench/results/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-restricted-properties': ['error',
        { object: 'process', property: 'env', message: 'Only entry points (src/cli, bin, bench, test) read the environment; pass config in.' }],
      'no-restricted-syntax': ['error',
        { selector: "Property[key.name='unsafeInherit']", message: 'isolated-vm unsafeInherit exposes host objects (catalogue test 3).' },
        ...['Literal[value', 'TemplateElement[value.raw'].map((node) => ({
          selector: `${node}=/\\b(LIMIT|OFFSET|LIKE|GLOB)\\s+\\?/i]`,
          message: 'SQLite reads a bare parameter after LIMIT, OFFSET, LIKE or GLOB when it plans, so it compiles the statement again on every run; write `+?` (unary plus is a no-op; src/store/sqlite/sqlite.test.ts).',
        }))],
    },
  },
  { files: ['src/cli/**', 'bin/**', 'bench/**', 'test/**', '**/*.test.ts'], rules: { 'no-restricted-properties': 'off' } },
  { files: ['test/**', '**/*.test.ts'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
  ...boundaryConfigs,
);
