// The layers of docs/ARCHITECTURE.md, checked on src/'s imports as they are (dpdm reads them with
// the TypeScript parser). Type-only imports count: a cycle of types is still two modules that
// cannot be read apart. Also `npm run check:cycles`.

import { readFile } from 'node:fs/promises';

import { type DependencyTree, parseCircular, parseDependencyTree } from 'dpdm';
import { beforeAll, describe, expect, it } from 'vitest';

let tree: DependencyTree;

beforeAll(async () => {
  tree = await parseDependencyTree('src/**/*.ts', { context: process.cwd(), transform: false, skipDynamicImports: false });
}, 60_000);

/** Every import from a module under `from` that resolves to a path matching `to`, as "issuer -> target". */
function imports(from: RegExp, to: RegExp): string[] {
  const found: string[] = [];
  for (const [issuer, dependencies] of Object.entries(tree)) {
    if (!from.test(issuer)) continue;
    for (const dependency of dependencies ?? []) {
      const target = dependency.id ?? dependency.request;
      if (to.test(target)) found.push(`${issuer} -> ${target}`);
    }
  }
  return found;
}

describe('src/ imports', () => {
  it('reads every module of src/', () => {
    expect(Object.keys(tree).filter((path) => path.startsWith('src/')).length).toBeGreaterThan(50);
    expect(imports(/^src\/daemon\/mount\.ts$/, /^src\/storage\/store-factory\.ts$/)).toHaveLength(1); // edges are seen
  });

  it('form no cycle, type-only imports included', () => {
    expect(parseCircular(tree).map((cycle) => cycle.join(' -> '))).toEqual([]);
  });

  it('keep fs/ free of SDKs and of fuse/', () => {
    expect(imports(/^src\/fs\//, /node_modules\/(@aws-sdk|@smithy|@azure|@google-cloud)\/|^src\/fuse\//)).toEqual([]);
  });

  it('keep storage/ below everything built on it', () => {
    expect(imports(/^src\/storage\//, /^src\/(fs|fuse|daemon|cli|creds|config)\//)).toEqual([]);
  });

  it('keep creds/ a library: it never imports the daemon, the CLI, fuse/ or fs/', () => {
    expect(imports(/^src\/creds\//, /^src\/(daemon|cli|fuse|fs)\//)).toEqual([]);
  });

  it('build concrete stores in one place, the store factory', async () => {
    const builders: string[] = [];
    for (const path of Object.keys(tree).filter((file) => file.startsWith('src/'))) {
      if (
        /\bnew (S3|Azure|Gcs|Swift)Store\(/.test(await readFile(path, 'utf8')) &&
        !/^src\/storage\/(store-factory|memory-store|faulty-store)\.ts$/.test(path)
      )
        builders.push(path);
    }
    expect(builders).toEqual([]);
  });
});
