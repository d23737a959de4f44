import { defineConfig } from 'vitest/config';

// Root-only suites create kernel objects with per-suite name prefixes, so files may run in
// parallel; two workers match the two-core CI machine.
export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**', 'test/e2e/**/*.sh'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
