import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests start real servers and child processes; forks isolate them cleanly.
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // 2-core machines: two test files at a time keeps CPU-heavy suites from starving each other.
    maxWorkers: 2,
  },
});
