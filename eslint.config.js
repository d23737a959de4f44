// Flat config: typescript-eslint's recommended rules over every TypeScript source.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  // Layering: common/ is shared by every component and imports none; DNS learns of policy only
  // through the narrow interface the agent wires (agent/main.ts is the composition root).
  {
    files: ['common/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: ['**/agent/*', '**/cni/**', '**/dns/**', '**/policy/**', '**/proxy/**'], message: 'common/ must not import a component' }] }] },
  },
  {
    files: ['dns/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: ['**/policy/**'], message: 'dns/ must not import policy/ (the agent wires them)' }] }] },
  },
);
