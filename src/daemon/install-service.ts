/**
 * `objmount install-service NAME SOURCE MOUNTPOINT [options]`: writes the mount's configuration
 * for the `objmount@.service` template unit (and the unit itself, if it is not installed) and
 * says which systemctl commands start it.
 */

import { chmod, copyFile, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ROOT_VIEW_WORD, parseSource } from '../config/mount-options.js';
import { UserError } from '../errors/user-error.js';

export interface InstallServiceOptions {
  name: string;
  source: string;
  mountpoint: string;
  /** Further `objmount mount` options, as on the command line. */
  options: string[];
  /** Where mount configurations go: /etc/objmount/mounts for root. */
  configDir: string;
  /** Where the unit goes: /etc/systemd/system. */
  unitDir: string;
  print(line: string): void;
}

/** The unit template shipped in the package's systemd/ directory. */
export const UNIT_TEMPLATE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'systemd', 'objmount@.service');

export async function installService(o: InstallServiceOptions): Promise<void> {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(o.name))
    throw new UserError(`'${o.name}' cannot name a service: use letters, digits, '.', '_' and '-'`);
  if (o.source !== ROOT_VIEW_WORD) parseSource(o.source); // a bad source fails here, not at boot
  if (!isAbsolute(o.mountpoint)) throw new UserError(`the mountpoint must be an absolute path, not '${o.mountpoint}'`);
  for (const value of [o.source, o.mountpoint, ...o.options]) {
    if (/[\s"'\\$]/.test(value))
      throw new UserError(`'${value}' has a space, quote, '$' or backslash, which the unit's configuration cannot carry`);
  }
  const conf = join(o.configDir, `${o.name}.conf`);
  const text = `# objmount@${o.name}.service (written by objmount install-service)\nSOURCE=${o.source}\nMOUNTPOINT=${o.mountpoint}\nOPTIONS=${o.options.join(' ')}\n`;
  await keepPrivate(dirname(o.configDir), o.print);
  await mkdir(o.configDir, { recursive: true, mode: 0o755 });
  await writeFile(`${conf}.tmp`, text, { mode: 0o644 });
  await rename(`${conf}.tmp`, conf);
  o.print(`wrote ${conf}`);

  const unit = join(o.unitDir, 'objmount@.service');
  const installed = await readFile(unit, 'utf8').catch(() => undefined);
  if (installed !== (await readFile(UNIT_TEMPLATE, 'utf8'))) {
    await mkdir(o.unitDir, { recursive: true });
    await copyFile(UNIT_TEMPLATE, unit);
    o.print(`wrote ${unit}`);
  }
  o.print(`start it now and at boot: systemctl daemon-reload && systemctl enable --now objmount@${o.name}`);
}

/**
 * The directory above the mounts' configuration (/etc/objmount) is where root's credentials are
 * stored: it is made 0700, and one that holds credentials but is open to others is closed.
 */
async function keepPrivate(directory: string, print: (line: string) => void): Promise<void> {
  const info = await stat(directory).catch(() => undefined);
  if (!info) {
    await mkdir(dirname(directory), { recursive: true });
    await mkdir(directory, { mode: 0o700 });
    return;
  }
  const holdsCredentials = await stat(join(directory, 'credentials.json')).then(
    () => true,
    () => false,
  );
  if (holdsCredentials && (info.mode & 0o077) !== 0) {
    await chmod(directory, 0o700);
    print(`${directory} holds credentials and was open to other users: made it 0700`);
  }
}
