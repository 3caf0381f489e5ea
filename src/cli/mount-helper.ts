/**
 * `mount.objmount`: the helper mount(8) runs for fstab lines of type `objmount`:
 *
 *     s3://bucket/prefix  /mnt/data  objmount  _netdev,allow_other,creds=NAME,write-mode=async  0 0
 *     objmount            /mnt/all   objmount  _netdev  0 0
 *
 * The source `objmount` is the root view: every paired bucket under one mountpoint (fstab needs a
 * source, and the mount table shows the root view under that name, so `mount -a` knows it).
 * mount(8) calls `mount.objmount SOURCE MOUNTPOINT [-sfnv] [-o OPTIONS]`. Options mount(8) and
 * systemd use themselves (_netdev, nofail, noauto, x-systemd.*, …) are dropped; `name=value`
 * becomes `--name value` and a bare `name` becomes `--name` (underscores read as dashes, so
 * `allow_other` is `--allow-other`); then `objmount mount` runs and returns once the mount is live.
 */

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { ROOT_VIEW_WORD } from '../config/mount-options.js';

/** Options for mount(8), systemd and fstab bookkeeping, not for objmount. */
const IGNORED = new Set([
  'defaults',
  'auto',
  'noauto',
  '_netdev',
  'nofail',
  'user',
  'nouser',
  'users',
  'owner',
  'group',
  'rw',
  'exec',
  'noexec',
  'suid',
  'nosuid',
  'dev',
  'nodev',
  'async',
  'atime',
  'noatime',
  'relatime',
]);

/** The `objmount mount` arguments an fstab entry stands for. */
export function mountArguments(argv: string[]): string[] {
  const positional: string[] = [];
  const options: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-o') options.push(...(argv[++i] ?? '').split(','));
    else if (arg.startsWith('-o')) options.push(...arg.slice(2).split(','));
    else if (/^-[sfnvNV]+$/.test(arg))
      continue; // sloppy, fake, no-mtab, verbose: nothing for us to do
    else positional.push(arg);
  }
  if (positional.length !== 2)
    throw new Error(`usage: mount.objmount SOURCE MOUNTPOINT [-o OPTIONS] (SOURCE ${ROOT_VIEW_WORD}: every paired bucket)`);
  const args = ['mount', positional[0]!, positional[1]!];
  for (const option of options) {
    if (option === '' || IGNORED.has(option) || option.startsWith('x-') || option.startsWith('comment=')) continue;
    if (option === 'ro') throw new Error("objmount has no read-only mode yet: remove 'ro' from the fstab options");
    const at = option.indexOf('=');
    const name = (at < 0 ? option : option.slice(0, at)).replace(/_/g, '-');
    args.push(`--${name}`);
    if (at >= 0) args.push(option.slice(at + 1));
  }
  return args;
}

export function main(): void {
  let args: string[];
  try {
    args = mountArguments(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`mount.objmount: ${(error as Error).message}\n`);
    process.exit(2);
  }
  const cli = fileURLToPath(new URL('./main.js', import.meta.url));
  const result = spawnSync(process.execPath, [cli, ...args], { stdio: 'inherit' });
  process.exit(result.status ?? 1);
}
