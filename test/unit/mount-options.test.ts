import { describe, expect, it } from 'vitest';

import { mountArguments } from '../../src/cli/mount-helper.js';
import { OptionError, formatSource, parseSize, parseSource } from '../../src/config/mount-options.js';

describe('parseSource', () => {
  it('reads a bucket and an optional prefix', () => {
    expect(parseSource('s3://bucket')).toEqual({ provider: 's3', bucket: 'bucket', prefix: '' });
    expect(parseSource('s3://bucket/')).toEqual({ provider: 's3', bucket: 'bucket', prefix: '' });
    expect(parseSource('s3://my.bucket-1/a/b/')).toEqual({ provider: 's3', bucket: 'my.bucket-1', prefix: 'a/b/' });
    expect(formatSource(parseSource('s3://b/x/y'))).toBe('s3://b/x/y');
  });

  it('explains what is wrong with a malformed source', () => {
    expect(() => parseSource('bucket')).toThrow(
      new OptionError(
        `'bucket' is not a source: write it as s3://bucket[/prefix], gs://bucket[/prefix], az://account/container[/prefix] or swift://container[/prefix] (or objmount for every paired bucket)`,
      ),
    );
    expect(() => parseSource('ftp://bucket')).toThrow(/ftp:\/\/ scheme is not supported/);
    expect(() => parseSource('s3://')).toThrow(/'' is not a valid bucket name/);
    expect(() => parseSource('s3://bad bucket')).toThrow(/not a valid bucket name/);
    expect(() => parseSource('s3://b/a//c')).toThrow(/empty path components/);
  });
});

describe('parseSource for Swift', () => {
  it('reads a container (any name without a slash) and an optional prefix', () => {
    expect(parseSource('swift://backups')).toEqual({ provider: 'swift', bucket: 'backups', prefix: '' });
    expect(parseSource('swift://My Container_1/a/b/')).toEqual({ provider: 'swift', bucket: 'My Container_1', prefix: 'a/b/' });
    expect(formatSource(parseSource('swift://c/x/y'))).toBe('swift://c/x/y');
  });

  it('refuses an empty or over-long container name', () => {
    expect(() => parseSource('swift://')).toThrow(/'' is not a Swift container name .* write swift:\/\/container\[\/prefix\]/);
    expect(() => parseSource(`swift://${'c'.repeat(257)}`)).toThrow(/is not a Swift container name/);
  });
});

describe('parseSource for Azure', () => {
  it('reads an account, a container and an optional prefix', () => {
    expect(parseSource('az://devstoreaccount1/photos')).toEqual({
      provider: 'az',
      account: 'devstoreaccount1',
      bucket: 'photos',
      prefix: '',
    });
    expect(parseSource('az://acct/my-container/a/b/')).toEqual({ provider: 'az', account: 'acct', bucket: 'my-container', prefix: 'a/b/' });
    expect(formatSource(parseSource('az://acct/con/x/y'))).toBe('az://acct/con/x/y');
    expect(formatSource(parseSource('az://acct/con'))).toBe('az://acct/con');
  });

  it("says which of Azure's naming rules a source breaks", () => {
    expect(() => parseSource('az://acct')).toThrow(/no container: write az:\/\/account\/container/);
    expect(() => parseSource('az://acct/')).toThrow(/no container/);
    expect(() => parseSource('az://Acct/con')).toThrow(/'Acct' is not a storage account name/);
    expect(() => parseSource('az://ab/con')).toThrow(/not a storage account name/);
    expect(() => parseSource('az://acct/Con')).toThrow(/'Con' is not a container name/);
    expect(() => parseSource('az://acct/a--b')).toThrow(/not a container name/);
    expect(() => parseSource('az://acct/ab')).toThrow(/not a container name/);
    expect(() => parseSource('az://acct/-ab')).toThrow(/not a container name/);
    expect(() => parseSource('az://acct/con/a//b')).toThrow(/empty path components/);
  });
});

describe('parseSize', () => {
  it('reads plain bytes and binary units', () => {
    expect(parseSize('1048576')).toBe(1048576);
    expect(parseSize('8M')).toBe(8 * 1024 * 1024);
    expect(parseSize('16MiB')).toBe(16 * 1024 * 1024);
    expect(parseSize('1g')).toBe(1024 ** 3);
    expect(parseSize('64k')).toBe(65536);
  });

  it('refuses what is not a size', () => {
    expect(() => parseSize('big')).toThrow(/'big' is not a size/);
    expect(() => parseSize('-5M')).toThrow(OptionError);
  });
});

describe('fstab options (mount.objmount)', () => {
  it('maps name=value and flags onto mount options, dropping what mount(8) and systemd use', () => {
    expect(
      mountArguments([
        's3://b/p',
        '/mnt/d',
        '-o',
        '_netdev,nofail,allow_other,creds=partner,write_mode=async,x-systemd.automount,comment=x',
        '-n',
      ]),
    ).toEqual(['mount', 's3://b/p', '/mnt/d', '--allow-other', '--creds', 'partner', '--write-mode', 'async']);
    expect(mountArguments(['s3://b', '/mnt', '-odefaults'])).toEqual(['mount', 's3://b', '/mnt']);
  });

  it('passes the source objmount (the root view: every paired bucket) on as it is', () => {
    expect(mountArguments(['objmount', '/mnt/all', '-o', '_netdev,nofail,allow_other,memory_limit=1G'])).toEqual([
      'mount',
      'objmount',
      '/mnt/all',
      '--allow-other',
      '--memory-limit',
      '1G',
    ]);
    expect(mountArguments(['objmount', '/mnt/all'])).toEqual(['mount', 'objmount', '/mnt/all']);
    expect(() => mountArguments(['/mnt/all'])).toThrow(
      /usage: mount.objmount SOURCE MOUNTPOINT \[-o OPTIONS\] \(SOURCE objmount: every paired bucket\)/,
    );
  });

  it('refuses what it cannot honour', () => {
    expect(() => mountArguments(['s3://b', '/mnt', '-o', 'ro'])).toThrow(/no read-only mode/);
    expect(() => mountArguments(['s3://b'])).toThrow(/usage: mount.objmount SOURCE MOUNTPOINT/);
  });
});
