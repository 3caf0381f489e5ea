// The libfuse 3 addon's argument checks: a mistake in the TypeScript wrapper fails at once with a
// TypeError that names the argument, never inside FUSE (no mount is made here).
import { describe, expect, it } from 'vitest';

import { loadFuse3Addon } from '../../src/fuse/binding.js';

const addon = loadFuse3Addon();
const noop = () => undefined;
const create = (mountpoint: unknown, options: unknown, ops: unknown, dispatch: unknown = noop) =>
  addon.create(mountpoint as string, options as object, ops as never, dispatch as never);

/** The call throws a TypeError with this message and Node's code for a bad argument. */
function expectTypeError(call: () => unknown, message: string | RegExp): void {
  let thrown: unknown;
  try {
    call();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(TypeError);
  expect((thrown as TypeError).message).toMatch(
    typeof message === 'string' ? new RegExp(`^${message.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}$`) : message,
  );
  expect((thrown as NodeJS.ErrnoException).code).toBe('ERR_INVALID_ARG_TYPE');
}

describe('the libfuse 3 addon rejects bad arguments', () => {
  it('a mountpoint that is not an absolute path string', () => {
    expectTypeError(() => create(42 as unknown as string, {}, {}), 'mountpoint must be an absolute path');
    expectTypeError(() => create('relative/dir', {}, {}), 'mountpoint must be an absolute path');
    expectTypeError(() => create('', {}, {}), 'mountpoint must be an absolute path');
  });

  it('options and ops that are not objects', () => {
    expectTypeError(() => create('/mnt', null as unknown as object, {}), 'options must be an object');
    expectTypeError(() => create('/mnt', {}, 'ops' as unknown as object), 'ops must be an object of functions');
    expectTypeError(() => create('/mnt', {}, {}, 'dispatch'), 'dispatch must be a function');
  });

  it('mistyped or out-of-range options, naming the option', () => {
    expectTypeError(() => create('/mnt', { allowOther: 'yes' }, {}), 'options.allowOther must be a boolean');
    expectTypeError(() => create('/mnt', { maxWrite: 2 * 1024 * 1024 }, {}), 'options.maxWrite must be a number from 4096 to 1048576');
    expectTypeError(() => create('/mnt', { attrTimeout: -1 }, {}), /options.attrTimeout must be a number/);
    expectTypeError(() => create('/mnt', { attrTimeout: Number.NaN }, {}), /options.attrTimeout/);
    expectTypeError(() => create('/mnt', { negativeTimeout: -1 }, {}), /options.negativeTimeout/);
  });

  it('an fsName that would break the mount option string', () => {
    expectTypeError(() => create('/mnt', { fsName: 's3://a,b' }, {}), "options.fsName must be a non-empty string without ',' or '\\'");
    expectTypeError(() => create('/mnt', { subtype: 7 }, {}), /options.subtype/);
  });

  it('an operation that is not a function', () => {
    expectTypeError(() => create('/mnt', {}, { getattr: 'nope' } as never), 'ops.getattr must be a function');
    expectTypeError(() => create('/mnt', {}, { read: {} } as never), 'ops.read must be a function');
  });

  it('a handle that did not come from create()', () => {
    const message = 'the first argument must be a session handle from create()';
    expectTypeError(() => addon.mount({}, noop, noop), message);
    expectTypeError(() => addon.unmount(undefined), message);
    expectTypeError(() => addon.reply(null, 1, 0), message);
    expectTypeError(() => addon.invalidatePath('x', '/a', noop), message);
  });

  it('callbacks that are not functions, and a relative path to invalidate', () => {
    const handle = create('/nonexistent-objmount-mountpoint', {}, {});
    expectTypeError(() => addon.mount(handle, 'cb' as never, noop), 'onMounted must be a function');
    expectTypeError(() => addon.mount(handle, noop, null as never), 'onEnded must be a function');
    expectTypeError(() => addon.mount(handle, noop, noop, 5 as never), 'onOpError must be a function');
    expectTypeError(() => addon.invalidatePath(handle, 'a/b', noop), 'path must be an absolute path inside the mount');
    expectTypeError(() => addon.invalidatePath(handle, '/a', 'cb' as never), 'callback must be a function');
  });

  it('a reply id that no dispatch could have given', () => {
    const handle = create('/mnt', {}, {});
    expectTypeError(() => addon.reply(handle, -1, 0), 'id must be a request id from dispatch');
    expectTypeError(() => addon.reply(handle, '7' as never, 0), 'id must be a request id from dispatch');
    // No such request (answered, or aborted by unmount): ignored.
    expect(() => addon.reply(handle, 12345, 0)).not.toThrow();
  });

  it('accepts well-formed arguments, and an unmounted session does not keep the process alive', () => {
    const handle = create(
      '/mnt',
      { fsName: 's3://bucket/prefix', allowOther: false, attrTimeout: 1.5, maxWrite: 1 << 20 },
      { getattr: noop },
    );
    expect(typeof handle).toBe('object');
    expect(() => addon.unmount(handle)).not.toThrow(); // stopping a session that never mounted is harmless
  });
});
