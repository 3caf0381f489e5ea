/**
 * The `objmount` command line: parse, call the daemon layer, print, exit. Errors meant for people
 * are printed as one line, without a stack trace, with a non-zero exit code.
 */

import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';

import { OptionError } from '../config/mount-options.js';
import { UserError } from '../errors/user-error.js';
import { credsCommand } from './creds-command.js';
import { demoCommand, installServiceCommand, statusCommand, unmountCommand } from './management-commands.js';
import { mountCommand } from './mount-command.js';

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  // The order here is the order of --help.
  let program: Argv = yargs(argv)
    .scriptName('objmount')
    .usage('$0 <command> [options]\n\nMount S3 buckets (and S3-compatible stores) as directories.');
  program = mountCommand(program, env);
  program = unmountCommand(program, env);
  program = installServiceCommand(program, env);
  program = statusCommand(program, env);
  program = credsCommand(program, env);
  program = demoCommand(program);
  await program
    .demandCommand(1, 'name a command: mount, unmount, status, creds, install-service or demo')
    .strict()
    .showHelpOnFail(false)
    .fail((message, error) => {
      throw error ?? new UserError(`${message} (see 'objmount --help')`, 2);
    })
    .help()
    .alias('help', 'h')
    .version()
    .parseAsync();
}

function report(error: unknown): number {
  if (error instanceof UserError) {
    process.stderr.write(`objmount: ${error.message}\n`);
    return error.exitCode;
  }
  if (error instanceof OptionError) {
    process.stderr.write(`objmount: ${error.message}\n`);
    return 2;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`objmount: unexpected error: ${message.split('\n')[0]}\n`);
  return 1;
}

// objmount supports Node 20; the SDK's notice about its own future Node support is not for our users.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

main(hideBin(process.argv), process.env).catch((error: unknown) => {
  process.exitCode = report(error);
});
