/**
 * A source-like tree, the same bytes on every run (a seeded generator): `dirs` directories nested
 * up to 5 deep and `files` text files of a few KiB (sizes spread like a source tree's: many small,
 * a few of tens of KiB), written under `root` and packed as a tar file with fixed owners and
 * times. The defaults (1,578 files, 360 directories, about 4 MB) are the issue's tree.
 */

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** mulberry32: a small seeded generator, so the tree is the same on every run and machine. */
function generator(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = [
  'const',
  'return',
  'if',
  'else',
  'for',
  'while',
  'value',
  'buffer',
  'size',
  'offset',
  'error',
  'result',
  'struct',
  'static',
  'void',
  'int',
  'char',
  'import',
  'export',
  'function',
  'class',
  'self',
  'None',
  'true',
  'false',
  'length',
  'index',
  'node',
  'next',
  'free',
];
const EXTENSIONS = ['c', 'h', 'c', 'h', 'ts', 'js', 'py', 'md', 'json', 'txt', 'rs', 'go'];

/**
 * Writes the tree under `root`, packs it as `tarFile`, and returns its files as
 * [{ path, size }] (paths relative to `root`, with `/`) and its total bytes.
 */
export function makeSourceTree({ root, tarFile, files = 1578, dirs = 360, seed = 15 }) {
  const random = generator(seed);
  const pick = (list) => list[Math.floor(random() * list.length)];
  const normal = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());

  const directories = ['.'];
  const depth = new Map([['.', 0]]);
  for (let i = 0; i < dirs; i++) {
    let parent = pick(directories);
    while (depth.get(parent) >= 5) parent = pick(directories);
    const dir = parent === '.' ? `pkg${i}` : `${parent}/mod${i}`;
    directories.push(dir);
    depth.set(dir, depth.get(parent) + 1);
    mkdirSync(join(root, dir), { recursive: true });
  }

  const list = [];
  let total = 0;
  for (let i = 0; i < files; i++) {
    const dir = pick(directories);
    const path = `${dir === '.' ? '' : `${dir}/`}file${i}.${pick(EXTENSIONS)}`;
    // log-normal sizes: median about 1.3 KB, mean about 2.5 KB, at most 64 KiB
    const size = Math.min(65536, Math.max(20, Math.round(Math.exp(7.2 + 1.1 * normal()))));
    let text = '';
    while (text.length < size) {
      const indent = '  '.repeat(Math.floor(random() * 4));
      const words = Array.from({ length: 2 + Math.floor(random() * 8) }, () => pick(WORDS));
      text += `${indent}${words.join(' ')};\n`;
    }
    text = text.slice(0, size);
    writeFileSync(join(root, path), text);
    list.push({ path, size });
    total += size;
  }
  execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@1700000000', '-cf', tarFile, '-C', root, '.']);
  return { files: list, directories: directories.length - 1, bytes: total };
}
