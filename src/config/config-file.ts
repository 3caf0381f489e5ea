/**
 * The configuration file: defaults for `objmount mount` options, overridden by the command line.
 *
 * `config.toml` in the credential store's directory: `$OBJMOUNT_CONFIG_DIR`, else
 * `$XDG_CONFIG_HOME/objmount`, else `~/.config/objmount` (root: `/etc/objmount`). Keys are the
 * long option names, values as on the command line:
 *
 *     block-size = "16M"
 *     memory-limit = "2G"
 *     write-mode = "async"
 *     metadata-ttl = 5
 *
 * A missing file is no configuration; a malformed one, or an unknown key, is an error naming the
 * file and the line.
 */

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { TomlError, parse } from 'smol-toml';

import { OptionError } from './mount-options.js';

export function configFilePath(env: NodeJS.ProcessEnv, uid: number): string {
  if (env.OBJMOUNT_CONFIG_DIR) return join(env.OBJMOUNT_CONFIG_DIR, 'config.toml');
  if (env.XDG_CONFIG_HOME) return join(env.XDG_CONFIG_HOME, 'objmount', 'config.toml');
  return uid === 0 ? '/etc/objmount/config.toml' : join(homedir(), '.config', 'objmount', 'config.toml');
}

/** The file's settings, checked against `known` option names (what `mount --help` lists). */
export function readConfigFile(path: string, known: ReadonlySet<string>): Record<string, string | number | boolean> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new OptionError(`cannot read ${path}: ${(error as Error).message}`);
  }
  let table: Record<string, unknown>;
  try {
    table = parse(text);
  } catch (error) {
    if (error instanceof TomlError) throw new OptionError(`${path}:${error.line}: ${error.message.split('\n')[0]}`);
    throw error;
  }
  const settings: Record<string, string | number | boolean> = {};
  for (const [key, value] of Object.entries(table)) {
    const line = text.split(/\r?\n/).findIndex((l) => l.trimStart().startsWith(key)) + 1;
    if (!known.has(key)) throw new OptionError(`${path}:${line}: '${key}' is not a mount option (see 'objmount mount --help')`);
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new OptionError(`${path}:${line}: '${key}' must be a string, a number or true/false`);
    }
    settings[key] = value;
  }
  return settings;
}
