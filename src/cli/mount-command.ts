/**
 * `objmount mount`: in the foreground (or as the daemon child) it builds the resolvers and runs the
 * mount; otherwise it forks itself as a detached daemon and returns once the mount is live.
 */

import { fork } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';

import { type MountOptions, ROOT_VIEW_WORD, formatSource } from '../config/mount-options.js';
import { DAEMON_MALLOC_ENV } from '../daemon/malloc-env.js';
import { MountRegistry } from '../daemon/registry.js';
import { runForeground } from '../daemon/serve.js';
import { UserError } from '../errors/user-error.js';
import { type LogLevel, type Logger, createJsonLogger, createLogger } from '../log/logger.js';
import { type MountArgs, mountFlags, toMountOptions, withConfigFile } from './mount-flags.js';

const DAEMON_CHILD = 'OBJMOUNT_DAEMON_CHILD';

/** Adds `objmount mount` to the program. */
export function mountCommand(program: Argv, env: NodeJS.ProcessEnv): Argv {
  return program.command(
    'mount <source> [mountpoint]',
    `mount s3://bucket[/prefix], gs://bucket[/prefix], az://account/container[/prefix] or swift://container[/prefix] on an empty directory; with the directory alone (or the source ${ROOT_VIEW_WORD}, as in fstab), the root view: every paired bucket as s3/<bucket>, az/<account>/<container>, gs/<bucket>, swift/<container>`,
    (y) => withConfigFile(mountFlags(y), env),
    (args) => runMount(args as MountArgs, env),
  );
}

function defaultLogFile(mountpoint: string, env: NodeJS.ProcessEnv): string {
  const base = process.getuid?.() === 0 ? '/var/log/objmount' : join(env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'objmount');
  const name = resolve(mountpoint).replace(/^\/+/, '').replace(/\//g, '-') || 'root';
  return join(base, `${name}.log`);
}

async function runMount(args: MountArgs, env: NodeJS.ProcessEnv): Promise<void> {
  const options = toMountOptions(args, env);
  const registry = new MountRegistry(MountRegistry.defaultDirectory(env, process.getuid?.() ?? 0));
  await registry.checkPrivate(); // before anything is mounted: a mount it could not record could not be unmounted
  const child = env[DAEMON_CHILD] === '1';
  if (options.foreground || child) {
    // The daemon child's stdout and stderr are its log file.
    const level = options.logLevel as LogLevel;
    // Lines for a person at a terminal; JSON lines for the log file or the journal.
    const logger: Logger = process.stderr.isTTY ? createLogger((line) => process.stderr.write(line), level) : createJsonLogger(2, level);
    // The SDK and the FUSE binding load only for commands that mount.
    const [
      { startMount },
      { DefaultChainResolver, StoreResolver },
      { CredentialStore, LoadedCredentialStore },
      { AzureEnvironmentResolver, StoredAzureResolver },
      { StoredGcsResolver },
      { StoredSwiftResolver },
    ] = await Promise.all([
      import('../daemon/mount.js'),
      import('../creds/resolver.js'),
      import('../creds/store.js'),
      import('../creds/azure-credentials.js'),
      import('../creds/gcs-credentials.js'),
      import('../creds/swift-credentials.js'),
    ]);
    // One read of credentials.json serves every resolver (and the root view's list of buckets).
    const credentials = new LoadedCredentialStore(new CredentialStore(CredentialStore.defaultDirectory(env, process.getuid?.() ?? 0)));
    try {
      await runForeground({
        start: () =>
          startMount(options, {
            resolver: new StoreResolver(credentials, new DefaultChainResolver(env), args.creds),
            azureResolver: new StoredAzureResolver(credentials, new AzureEnvironmentResolver(env), args.creds),
            gcsResolver: new StoredGcsResolver(credentials, args.creds),
            swiftResolver: new StoredSwiftResolver(credentials, env, args.creds),
            pairings: async () => (await credentials.read()).pairings,
            reloadCredentials: () => credentials.forget(),
            logger,
            // A daemon's log is a file: its parent says these on the terminal (in the foreground
            // the log is the terminal already).
            warnUser: child ? (message) => process.send?.({ type: 'warning', message }) : undefined,
          }),
        logger,
        registry,
        logFile: options.logFile,
        onReady: child ? () => process.send?.({ type: 'ready' }) : undefined,
      });
    } catch (error) {
      if (child)
        process.send?.({
          type: 'error',
          message: error instanceof Error ? error.message : String(error),
          user: error instanceof UserError,
        });
      throw error;
    }
    return;
  }
  await daemonize(options, env);
}

/**
 * Starts this same command as a detached child in the foreground mode, its output going to the
 * log file, and returns once the child reports the mount live (or exits with the reason).
 */
async function daemonize(options: MountOptions, env: NodeJS.ProcessEnv): Promise<void> {
  const logFile = options.logFile ?? defaultLogFile(options.mountpoint, env);
  mkdirSync(resolve(logFile, '..'), { recursive: true, mode: 0o700 });
  const log = openSync(logFile, 'a', 0o600);
  const script = fileURLToPath(new URL('./main.js', import.meta.url));
  const args = hideBin(process.argv);
  if (!options.logFile) args.push('--log-file', logFile);
  const child = fork(script, args, {
    detached: true,
    stdio: ['ignore', log, log, 'ipc'],
    // Malloc settings that only take effect at process start (daemon/malloc-env.ts).
    env: { ...DAEMON_MALLOC_ENV, ...env, [DAEMON_CHILD]: '1' },
  });
  const outcome = await new Promise<{ ready: boolean; message?: string }>((resolveOutcome) => {
    child.on('message', (message: { type?: string; message?: string }) => {
      if (message?.type === 'warning') process.stderr.write(`objmount: warning: ${message.message}\n`);
      if (message?.type === 'ready') resolveOutcome({ ready: true });
      if (message?.type === 'error') resolveOutcome({ ready: false, message: message.message });
    });
    child.on('exit', (code) => resolveOutcome({ ready: false, message: `the daemon exited with code ${code}; see ${logFile}` }));
  });
  if (!outcome.ready) throw new UserError(outcome.message ?? `the daemon failed; see ${logFile}`);
  child.disconnect();
  child.unref();
  // A container name alone does not say which account: Azure sources are shown whole.
  const what = options.rootView ? 'the root view' : options.source.account ? formatSource(options.source) : options.source.bucket;
  process.stdout.write(`mounted ${what} on ${resolve(options.mountpoint)} (log: ${logFile})\n`);
}
