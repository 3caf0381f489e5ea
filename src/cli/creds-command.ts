/**
 * `objmount creds …`: the yargs definitions of the credential commands, which live in creds/commands.ts.
 */

import { readFile } from 'node:fs/promises';

import type { Argv } from 'yargs';

import { MountRegistry } from '../daemon/registry.js';
import { UserError } from '../errors/user-error.js';

/** Adds `objmount creds` to the program. */
export function credsCommand(program: Argv, env: NodeJS.ProcessEnv): Argv {
  return program.command('creds', 'import credentials and pair buckets with them (see objmount creds --help)', (c) =>
    credsSubcommands(c, env),
  );
}

/** `objmount creds …`; the commands load the SDK only when they run. */
function credsSubcommands(y: Argv, env: NodeJS.ProcessEnv): Argv {
  const context = async () => {
    const { CredentialStore } = await import('../creds/store.js');
    return {
      store: new CredentialStore(CredentialStore.defaultDirectory(env, process.getuid?.() ?? 0)),
      env,
      print: (line: string) => process.stdout.write(`${line}\n`),
      readStdin: async () => {
        const chunks: Buffer[] = [];
        for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
        return Buffer.concat(chunks).toString('utf8');
      },
    };
  };
  const commands = () => import('../creds/commands.js');
  return y
    .command(
      'import [file]',
      'read credentials from a file (- for standard input), verify them, detect and pair their buckets',
      (c) =>
        c
          .positional('file', {
            type: 'string',
            describe:
              'AWS credentials/config, .s3cfg, rclone.conf (s3, azureblob, google cloud storage, swift), mc config.json, ec2rc.sh, an OpenStack RC file (openrc.sh; a password it asks for comes from OS_PASSWORD or standard input), a key=value file, an Azure connection string, SAS URL or AZURE_STORAGE_* file, a Google service-account key, or -',
          })
          .option('from-env', {
            type: 'boolean',
            default: false,
            describe: 'import AWS_* (with AWS_ENDPOINT_URL[_S3], AWS_REGION), AZURE_STORAGE_* and GOOGLE_APPLICATION_CREDENTIALS',
          })
          .option('name', {
            type: 'string',
            describe: 'name to store it under (default: the profile, remote or alias, or the endpoint host)',
          })
          .option('format', {
            choices: ['keyvalue', 'aws', 's3cfg', 'rclone', 'mc', 'ec2rc', 'openstack-table', 'azure', 'gcs'] as const,
            describe: 'the file format (default: detected)',
          })
          .option('profile', { type: 'string', describe: 'import only this profile, rclone remote or mc alias' })
          .option('endpoint', { type: 'string', describe: 'endpoint URL, for files that do not name one' })
          .option('region', { type: 'string', describe: 'region, for files that do not name one' })
          .option('signature', {
            choices: ['v2', 'v4'] as const,
            describe: "request signing the store needs (default: the file's, e.g. s3cmd's signature_v2, else v4)",
          })
          .option('ca-bundle', {
            type: 'string',
            describe: "PEM file of CA certificates the store's endpoint needs (default: the file's, e.g. s3cmd's ca_certs_file)",
          })
          .option('insecure', { type: 'boolean', default: false, describe: "do not verify the store's TLS certificate" })
          .option('force', { type: 'boolean', default: false, describe: 'replace a credential of the same name' }),
      async (args) => {
        if (!args.file && !args['from-env']) throw new UserError('name a file to import (or - for standard input, or --from-env)');
        await (await commands()).importCredentials(await context(), {
          file: args.file,
          fromEnv: args['from-env'],
          name: args.name,
          format: args.format,
          profile: args.profile,
          endpoint: args.endpoint,
          region: args.region,
          signatureVersion: args.signature,
          caBundle: args['ca-bundle'],
          insecure: args.insecure,
          force: args.force,
        });
      },
    )
    .command(
      'list',
      'list credentials and pairings (secrets masked)',
      (c) => c.option('json', { type: 'boolean', default: false }),
      async (args) => (await commands()).listCredentials(await context(), args.json),
    )
    .command(
      'show <name>',
      'show one credential (secrets masked)',
      (c) => c.positional('name', { type: 'string', demandOption: true }).option('json', { type: 'boolean', default: false }),
      async (args) => (await commands()).showCredential(await context(), args.name, args.json),
    )
    .command(
      'verify [name]',
      'check that credentials authenticate and their paired buckets are reachable',
      (c) => c.positional('name', { type: 'string' }),
      async (args) => (await commands()).verifyCredentials(await context(), args.name),
    )
    .command(
      'detect [name]',
      'list the buckets a credential (or every one) can see, and pair those not paired yet',
      (c) => c.positional('name', { type: 'string' }),
      async (args) => (await commands()).detectAndPair(await context(), args.name),
    )
    .command(
      'pair <uri> [name]',
      'use credential NAME for bucket URI (s3://bucket, az://account/container, gs://bucket, swift://container), for keys that may not list buckets; NAME public: unsigned requests to a public s3:// bucket; an Azure container SAS: --sas FILE, or - (or NAME -) to read it from standard input',
      (c) =>
        c
          .positional('uri', { type: 'string', demandOption: true })
          .positional('name', { type: 'string', describe: 'a stored credential, public, or - (an Azure container SAS on standard input)' })
          .option('sas', {
            type: 'string',
            describe:
              'az:// only: read the container SAS (sv=…&sig=…) from this file, or from standard input with - (never give it on the command line)',
          })
          .option('endpoint', {
            type: 'string',
            describe:
              "with a SAS: the blob service URL (default: a stored credential's of the account, else Azure's); with public: the S3-compatible store where the bucket is checked (default AWS)",
          }),
      async (args) => {
        // yargs reads `--sas -` as an empty --sas (and a positional '-'), and a lone `-` NAME as ''.
        const stdin = (value: string | undefined) => value === '-' || value === '';
        const sasFrom = stdin(args.sas) ? '-' : (args.sas ?? (stdin(args.name) ? '-' : undefined));
        if (args.name !== undefined && !stdin(args.name) && looksLikeSas(args.name)) {
          // Said without repeating it: the token is already in the shell history and /proc.
          throw new UserError(
            'a SAS on the command line stays in your shell history and in /proc: give it with --sas FILE, or with --sas - on standard input (and think of it as exposed)',
          );
        }
        if (sasFrom === undefined && args.name === undefined)
          throw new UserError('name the credential to pair with, public, or give an Azure SAS with --sas FILE (- for standard input)');
        const sas = sasFrom === undefined ? undefined : await readSecret(sasFrom, 'the SAS');
        return (await commands()).pairBucket(await context(), args.uri, sas === undefined ? args.name! : undefined, args.endpoint, sas);
      },
    )
    .command(
      'unpair <uri>',
      'forget the pairing of bucket URI',
      (c) => c.positional('uri', { type: 'string', demandOption: true }),
      async (args) => (await commands()).unpairBucket(await context(), args.uri),
    )
    .command(
      'remove <name>',
      'remove a credential and its pairings',
      (c) => c.positional('name', { type: 'string', demandOption: true }),
      async (args) => {
        const registry = new MountRegistry(MountRegistry.defaultDirectory(env, process.getuid?.() ?? 0));
        const mounted = (await registry.all()).map((record) => record.source);
        await (await commands()).removeCredential(await context(), args.name, mounted);
      },
    )
    .demandCommand(1, 'name a creds command: import, list, show, verify, detect, pair, unpair or remove');
}

/** A container SAS's query string (`?sv=…&sig=…`), or a SAS URL. */
function looksLikeSas(text: string): boolean {
  return text.startsWith('?') || /(^|[?&])sig=/.test(text);
}

/** A secret from a file, or from standard input with '-': its first line, trimmed. Never echoed. */
async function readSecret(from: string, what: string): Promise<string> {
  let text: string;
  try {
    if (from === '-') {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      text = Buffer.concat(chunks).toString('utf8');
    } else {
      text = await readFile(from, 'utf8');
    }
  } catch (error) {
    throw new UserError(
      `cannot read ${what} from ${from === '-' ? 'standard input' : from}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  const secret = text
    .split('\n')
    .map((line) => line.trim())
    .find((line) => line !== '');
  if (!secret) throw new UserError(`no ${what} in ${from === '-' ? 'standard input' : from}`);
  return secret;
}
