/**
 * The commands besides mount and creds: `unmount`, `install-service`, `status` and `demo`. Each adds
 * itself to the program; the daemon modules they need load only when they run.
 */

import { join, resolve } from 'node:path';

import type { Argv } from 'yargs';

import { MountRegistry } from '../daemon/registry.js';
import { unmount } from '../daemon/unmount.js';

/** Adds `objmount unmount` to the program. */
export function unmountCommand(program: Argv, env: NodeJS.ProcessEnv): Argv {
  return program.command(
    'unmount <mountpoint>',
    'upload what is pending and unmount',
    (y) =>
      y.positional('mountpoint', { type: 'string', demandOption: true }).option('force', {
        type: 'boolean',
        default: false,
        describe: 'detach at once, even while files are open, without waiting for uploads (async closes stay in the journal)',
      }),
    async (args) => {
      const registry = new MountRegistry(MountRegistry.defaultDirectory(env, process.getuid?.() ?? 0));
      await unmount(args.mountpoint, { force: args.force, registry });
    },
  );
}

/** Adds `objmount install-service` to the program. */
export function installServiceCommand(program: Argv, env: NodeJS.ProcessEnv): Argv {
  return program.command(
    'install-service <name> <source> <mountpoint> [options..]',
    'configure a systemd service (objmount@NAME) that mounts SOURCE on MOUNTPOINT at boot',
    (y) =>
      y
        .positional('name', { type: 'string', demandOption: true })
        .positional('source', { type: 'string', demandOption: true })
        .positional('mountpoint', { type: 'string', demandOption: true })
        .positional('options', { type: 'string', array: true, describe: "further 'objmount mount' options (after --)" })
        .option('unit-dir', { type: 'string', default: '/etc/systemd/system', describe: 'where the unit template goes' }),
    async (args) => {
      const { installService } = await import('../daemon/install-service.js');
      const configDir = env.OBJMOUNT_CONFIG_DIR ? join(env.OBJMOUNT_CONFIG_DIR, 'mounts') : '/etc/objmount/mounts';
      await installService({
        name: args.name,
        source: args.source,
        mountpoint: args.mountpoint,
        // Options after `--` land in args._ (after the command's own name).
        options: [...(args.options ?? []), ...args._.slice(1)].map(String),
        configDir,
        unitDir: args['unit-dir'],
        print: (line) => process.stdout.write(`${line}\n`),
      });
    },
  );
}

/** Adds `objmount status` to the program. */
export function statusCommand(program: Argv, env: NodeJS.ProcessEnv): Argv {
  return program.command(
    'status [mountpoint]',
    'what each mount (or one) has done: traffic, requests, cache, pending uploads, errors',
    (y) => y.positional('mountpoint', { type: 'string' }).option('json', { type: 'boolean', default: false }),
    async (args) => {
      const registry = new MountRegistry(MountRegistry.defaultDirectory(env, process.getuid?.() ?? 0));
      const { showStatus } = await import('../daemon/status-command.js');
      await showStatus(registry, args.mountpoint === undefined ? undefined : resolve(args.mountpoint), args.json, (line) =>
        process.stdout.write(`${line}\n`),
      );
    },
  );
}

/** Adds `objmount demo` to the program. */
export function demoCommand(program: Argv): Argv {
  return program.command(
    'demo',
    'mount a sample bucket from an embedded local S3 server at ./objmount-demo',
    (y) => y.option('dir', { type: 'string', default: './objmount-demo', describe: 'where to mount the demo bucket' }),
    async (args) => {
      // Loaded on demand: the embedded server is only needed by the demo.
      const { runDemo } = await import('../daemon/demo.js');
      await runDemo({ mountpoint: args.dir });
    },
  );
}
