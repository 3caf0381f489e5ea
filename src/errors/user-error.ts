/**
 * An error meant for a person: its message is one line that says what went wrong and what to do.
 * The CLI prints it without a stack trace and exits non-zero.
 */
export class UserError extends Error {
  override readonly name = 'UserError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}
