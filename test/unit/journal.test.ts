/** Async write mode and its journal (fs/write/journal.ts), on the in-memory store. */

import { randomBytes } from 'node:crypto';
import { appendFile, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { FileSystem, O_RDWR } from '../../src/fs/file-system.js';
import { FileUploader } from '../../src/fs/write/file-uploader.js';
import { Journal, UploadTracker, writeRecord } from '../../src/fs/write/journal.js';
import { JournalLog, LOG_RECORD_MAX, readLogs } from '../../src/fs/write/journal-log.js';
import { recover, removeUnjournaled } from '../../src/fs/write/recovery.js';
import { silentLogger } from '../../src/log/logger.js';
import { FaultyStore } from '../../src/storage/faulty-store.js';
import { MemoryStore } from '../../src/storage/memory-store.js';

const PART = 16 * 1024;
let stagingDir: string;
let memory: MemoryStore;
let faulty: FaultyStore;
let fs: FileSystem;

beforeEach(async () => {
  stagingDir = await mkdtemp(join(tmpdir(), 'objmount-journal-'));
  memory = new MemoryStore({ minPartSize: PART });
  faulty = new FaultyStore(memory);
  fs = new FileSystem(faulty, {
    prefix: '',
    defaults: { uid: 1000, gid: 1000, fileMode: 0o644, dirMode: 0o755 },
    cache: { fileTtlMs: 1000, dirTtlMs: 1000, negativeTtlMs: 1000, maxEntries: 1000 },
    stagingDir,
    partSize: PART,
    uploadConcurrency: 4,
    writeMode: 'async',
    logger: silentLogger,
  });
});

afterEach(async () => {
  await rm(stagingDir, { recursive: true, force: true });
});

/** Keys of the records not done: beside staging files (large files) and in the journal log (small ones). */
const records = async () => [
  ...(await readdir(stagingDir)).filter((name) => name.endsWith('.pending.json')),
  ...(await readLogs(stagingDir)).records.map((record) => record.key),
];
/** What is in the staging directory besides the journal log (which stays until unmount or rotation). */
const staged = async () => (await readdir(stagingDir)).filter((name) => !/^journal-.*\.log$/.test(name));

describe('async write mode', () => {
  it('returns from close with a journal record, serves the new content, then uploads it', async () => {
    let releaseGate!: () => void;
    const gate = new Promise<void>((resolve) => (releaseGate = resolve));
    const put = memory.put.bind(memory);
    memory.put = async (...args) => {
      await gate;
      return put(...args);
    };
    const fh = await fs.create('/a', 0o644);
    await fs.write(fh, Buffer.from('hello'), 0);
    await fs.release(fh);
    expect(memory.objects.has('a')).toBe(false); // not uploaded yet
    expect(await records()).toHaveLength(1);
    expect((await fs.getattr('/a')).size).toBe(5);
    const again = await fs.open('/a', 0);
    const into = Buffer.alloc(5);
    expect(await fs.read(again, into, 5, 0)).toBe(5);
    expect(into.toString()).toBe('hello');
    await fs.release(again);

    releaseGate();
    await vi.waitFor(() => expect(memory.objects.get('a')?.body.toString()).toBe('hello'));
    await vi.waitFor(async () => expect(await records()).toEqual([]));
    await vi.waitFor(async () => expect(await staged()).toEqual([])); // staging copy dropped
    await fs.drain();
    expect(await readdir(stagingDir)).toEqual([]); // and the log, all of it done, at unmount
  });

  it('uploads the closed version before a file is opened for writing again', async () => {
    const fh = await fs.create('/b', 0o644);
    await fs.write(fh, Buffer.from('first'), 0);
    await fs.release(fh);
    const writer = await fs.open('/b', O_RDWR);
    expect(memory.objects.get('b')?.body.toString()).toBe('first');
    await fs.write(writer, Buffer.from('SECOND'), 0);
    await fs.release(writer);
    await vi.waitFor(() => expect(memory.objects.get('b')?.body.toString()).toBe('SECOND'));
  });

  it('keeps retrying a failed background upload, and drain reports what could not be uploaded', async () => {
    faulty.fail('put', { times: 2, code: 'Transient' }); // the background upload's, then drain's
    const fh = await fs.create('/c', 0o644);
    await fs.write(fh, Buffer.from('retry me'), 0);
    await fs.release(fh);
    await vi.waitFor(() => expect(fs.backgroundUploadCount).toBe(0)); // the first attempt failed
    await expect(fs.drain()).rejects.toMatchObject({ code: 'EIO' });
    expect(await records()).toHaveLength(1); // the data is still journaled
    await fs.drain(); // the 3rd attempt goes through
    expect(memory.objects.get('c')?.body.toString()).toBe('retry me');
    expect(await records()).toEqual([]);
  });

  it('drops the journal record of a file renamed over or created over before its upload: the next mount never brings it back', async () => {
    faulty.fail('put', { times: 2, code: 'Transient' }); // both old versions' first uploads
    for (const name of ['/renamed-over', '/created-over']) {
      const fh = await fs.create(name, 0o644);
      await fs.write(fh, Buffer.from('OLD'), 0);
      await fs.release(fh);
    }
    await vi.waitFor(() => expect(fs.backgroundUploadCount).toBe(0)); // both first tries failed: still journaled
    const fresh = await fs.create('/fresh', 0o644);
    await fs.write(fresh, Buffer.from('NEW'), 0);
    await fs.release(fresh);
    await fs.rename('/fresh', '/renamed-over');
    const again = await fs.create('/created-over', 0o644);
    await fs.write(again, Buffer.from('NEW'), 0);
    await fs.release(again);
    await fs.drain();
    expect(memory.objects.get('renamed-over')?.body.toString()).toBe('NEW');
    expect(memory.objects.get('created-over')?.body.toString()).toBe('NEW');
    // A killed daemon's next mount: nothing of the old versions is left to upload.
    expect(await records()).toEqual([]);
    const result = await recover(stagingDir, new FileUploader(memory, { partSize: PART, concurrency: 2 }), 2);
    expect(result.uploaded).toEqual([]);
    expect(memory.objects.get('renamed-over')?.body.toString()).toBe('NEW');
    expect(memory.objects.get('created-over')?.body.toString()).toBe('NEW');
  });

  it('drops the journal record of a file unlinked before its upload', async () => {
    faulty.fail('put', { times: 100, code: 'Transient' });
    const fh = await fs.create('/d', 0o644);
    await fs.write(fh, Buffer.from('gone'), 0);
    await fs.release(fh);
    await fs.unlink('/d');
    expect(await records()).toEqual([]);
    faulty.clear();
    await fs.drain();
    expect(memory.objects.has('d')).toBe(false);
  });
});

describe('group commit', () => {
  /** Holds every put until `open()`, so records stay until the test has looked at them. */
  function holdUploads(): () => void {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const put = memory.put.bind(memory);
    memory.put = async (...args) => {
      await gate;
      return put(...args);
    };
    return open;
  }

  it('costs the close of a small file one fsync: its record, bytes and all, in the journal log', async () => {
    const release = holdUploads();
    const fh = await fs.create('/one', 0o644);
    await fs.write(fh, Buffer.from('one'), 0);
    await fs.release(fh);
    // The log's fsync, and once per log (it is new) its directory's.
    expect(fs.journalStats).toEqual({ rounds: 1, fsyncs: 2, records: 1 });
    const second = await fs.create('/two', 0o644);
    await fs.write(second, Buffer.from('two'), 0);
    await fs.release(second);
    expect(fs.journalStats).toEqual({ rounds: 2, fsyncs: 3, records: 2 });
    const [record] = (await readLogs(stagingDir)).records;
    expect(record).toMatchObject({ key: 'one', size: 3 });
    expect(record!.data.toString()).toBe('one');
    expect(memory.calls.get('put') ?? 0).toBe(0); // the upload follows the close
    release();
    await vi.waitFor(async () => expect(await records()).toEqual([]));
    expect(memory.objects.get('one')?.body.toString()).toBe('one');
  });

  it('journals a file larger than a log record beside its staging file, not in the log', async () => {
    const release = holdUploads();
    const data = randomBytes(LOG_RECORD_MAX + 1);
    const fh = await fs.create('/large', 0o644);
    await fs.write(fh, data, 0);
    await fs.release(fh);
    expect((await readdir(stagingDir)).filter((name) => name.endsWith('.pending.json'))).toHaveLength(1);
    expect((await readLogs(stagingDir)).records).toEqual([]);
    release();
    await vi.waitFor(() => expect(memory.objects.get('large')?.body.equals(data)).toBe(true));
    await vi.waitFor(async () => expect(await readdir(stagingDir)).toEqual([]));
  });

  it('journals a file once for its flush and its release (as FUSE sends both at close)', async () => {
    const release = holdUploads();
    const fh = await fs.create('/flushed', 0o644);
    await fs.write(fh, Buffer.from('flushed'), 0);
    await fs.flush(fh);
    // The release waits for the upload the flush queued (both need the file): nothing is left
    // to journal when it runs.
    const released = fs.release(fh);
    release();
    await released;
    expect(fs.journalStats).toEqual({ rounds: 1, fsyncs: 2, records: 1 }); // the log's, and its new directory entry's
    expect(memory.objects.get('flushed')?.body.toString()).toBe('flushed');
  });

  it('lets closes in flight share their rounds: one fsync of the log for many records', async () => {
    const release = holdUploads();
    const N = 40;
    const handles = await Promise.all(Array.from({ length: N }, (_, i) => fs.create(`/many-${i}`, 0o644)));
    await Promise.all(handles.map((fh, i) => fs.write(fh, Buffer.from(`file ${i}`), 0)));
    // Each close returns only once its own record is on disk.
    await Promise.all(
      handles.map(async (fh, i) => {
        await fs.release(fh);
        const record = (await readLogs(stagingDir)).records.find((r) => r.key === `many-${i}`);
        expect(record?.data.toString()).toBe(`file ${i}`);
      }),
    );
    const { rounds, fsyncs, records: made } = fs.journalStats;
    expect(made).toBe(N);
    expect(rounds).toBeLessThanOrEqual(3); // not one per close
    expect(fsyncs).toBe(rounds + 1); // the log's, once a round, and its directory's once
    release();
    await vi.waitFor(() => expect(memory.objects.size).toBe(N));
    for (let i = 0; i < N; i++) expect(memory.objects.get(`many-${i}`)?.body.toString()).toBe(`file ${i}`);
    await vi.waitFor(async () => expect(await records()).toEqual([]));
    await fs.drain();
    expect(await readdir(stagingDir)).toEqual([]);
  });

  it('uploads small files of a burst of closes many at a time', async () => {
    let inFlight = 0;
    let most = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const put = memory.put.bind(memory);
    memory.put = async (...args) => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      await gate;
      inFlight -= 1;
      return put(...args);
    };
    for (let i = 0; i < 100; i++) {
      const fh = await fs.create(`/burst-${i}`, 0o644);
      await fs.write(fh, Buffer.from('x'), 0);
      await fs.release(fh);
    }
    await vi.waitFor(() => expect(inFlight).toBe(32)); // more than --upload-concurrency (4), and bounded
    release();
    await vi.waitFor(() => expect(memory.objects.size).toBe(100));
    expect(most).toBe(32);
  });

  it('fails the close of a record it could not write, and leaves no record', async () => {
    const journal = new Journal(join(stagingDir, 'no-such-dir'));
    await expect(journal.write(join(stagingDir, 'no-such-dir', 'r.pending.json'), '{}')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(journal.add(join(stagingDir, 'missing-staging'), { key: 'k', size: 1, metadata: {} })).rejects.toMatchObject({
      code: 'ENOENT',
    });
    expect(await readdir(stagingDir)).toEqual([]);
  });
});

describe('recovery', () => {
  it('uploads what a previous daemon journaled, and keeps what it cannot', async () => {
    const data = randomBytes(3 * PART + 5);
    await writeFile(join(stagingDir, 'staging-old-1'), data);
    await writeRecord(join(stagingDir, 'staging-old-1'), { key: 'dir/recovered', size: data.length, metadata: { mode: '33188' } });
    await writeFile(join(stagingDir, 'staging-old-2'), 'short');
    await writeRecord(join(stagingDir, 'staging-old-2'), { key: 'torn', size: 100, metadata: {} });

    const result = await recover(stagingDir, new FileUploader(memory, { partSize: PART, concurrency: 2 }), 2);
    expect(result.uploaded).toEqual(['dir/recovered']);
    expect(result.failed.map((f) => f.key)).toEqual(['torn']);
    expect(memory.objects.get('dir/recovered')?.body.equals(data)).toBe(true);
    expect(memory.objects.get('dir/recovered')?.metadata.mode).toBe('33188');
    expect((await readdir(stagingDir)).sort()).toEqual(['staging-old-2', 'staging-old-2.pending.json']);
  });

  it('aborts the multipart uploads a previous daemon began and never ended', async () => {
    const tracker = new UploadTracker(stagingDir);
    const left = await memory.createMultipartUpload('left/behind');
    await memory.uploadPart('left/behind', left, 1, Buffer.alloc(PART));
    await tracker.begun('left/behind', left);
    await tracker.begun('gone/already', 'no-such-upload'); // aborted by someone else meanwhile
    const finished = await memory.createMultipartUpload('finished');
    await tracker.begun('finished', finished);
    await tracker.ended(finished);

    const result = await recover(stagingDir, new FileUploader(memory, { partSize: PART, concurrency: 2 }), 2);
    expect(result.aborted.sort()).toEqual(['gone/already', 'left/behind']);
    expect(result.failed).toEqual([]);
    expect([...memory.uploads.keys()]).toEqual([finished]); // ended normally: not this code's to abort
    expect(await readdir(stagingDir)).toEqual([]);
  });

  it('sets damaged and empty records aside instead of failing, and goes on with the others', async () => {
    const uploader = new FileUploader(memory, { partSize: PART, concurrency: 2, tracker: new UploadTracker(stagingDir) });
    // An upload record cut short after its id: the upload it names can still be found and aborted.
    const cut = await memory.createMultipartUpload('cut/short');
    await new UploadTracker(stagingDir).begun('cut/short', cut);
    const cutName = (await readdir(stagingDir)).find((n) => n.endsWith('.upload.json'))!;
    await writeFile(join(stagingDir, cutName), JSON.stringify({ key: 'cut/short', uploadId: cut }).slice(0, -1));
    await writeFile(join(stagingDir, 'upload-0123456789abcdef0123456789abcdef.upload.json'), ''); // empty
    await writeFile(join(stagingDir, 'staging-old-3'), 'kept aside');
    await writeFile(join(stagingDir, 'staging-old-3.pending.json'), '{"key": "half'); // torn by hand or disk
    await writeFile(join(stagingDir, 'staging-old-4'), 'fine');
    await writeRecord(join(stagingDir, 'staging-old-4'), { key: 'fine', size: 4, metadata: {} });

    const result = await recover(stagingDir, uploader, 2);
    expect(result.uploaded).toEqual(['fine']);
    expect(result.failed).toEqual([]);
    expect(result.aborted).toEqual(['cut/short']);
    expect(memory.uploads.size).toBe(0);
    expect(result.setAside.map(({ file, action }) => [file.slice(stagingDir.length + 1), action]).sort()).toEqual(
      [
        [cutName, `set aside as ${cutName}.damaged; its upload of cut/short aborted`],
        ['staging-old-3.pending.json', 'set aside as staging-old-3.pending.json.damaged with its staging file (staging-old-3.damaged)'],
        [
          'upload-0123456789abcdef0123456789abcdef.upload.json',
          'set aside as upload-0123456789abcdef0123456789abcdef.upload.json.damaged; no upload id could be read from it, so none was aborted',
        ],
      ].sort(),
    );
    expect(result.setAside.find((s) => s.file.endsWith('abcdef.upload.json'))?.problem).toBe('empty');
    expect(result.setAside.find((s) => s.file.endsWith('old-3.pending.json'))?.problem).toMatch(/^not JSON: /);
    expect((await readdir(stagingDir)).sort()).toEqual(
      [
        `${cutName}.damaged`,
        'staging-old-3.damaged',
        'staging-old-3.pending.json.damaged',
        'upload-0123456789abcdef0123456789abcdef.upload.json.damaged',
      ].sort(),
    );
    // What was set aside stops no later recovery either.
    expect(await recover(stagingDir, uploader, 2)).toEqual({ uploaded: [], failed: [], aborted: [], setAside: [] });
  });

  it('aborts the upload of a record a killed daemon was still making durable', async () => {
    const uploader = new FileUploader(memory, { partSize: PART, concurrency: 2 });
    const left = await memory.createMultipartUpload('mid/record');
    await new UploadTracker(stagingDir).begun('mid/record', left);
    const [name] = await readdir(stagingDir);
    await writeFile(join(stagingDir, `${name}.tmp`), await readFile(join(stagingDir, name!)));
    await rm(join(stagingDir, name!)); // killed between the write and the rename
    await writeFile(join(stagingDir, 'upload-11111111111111111111111111111111.upload.json.tmp'), ''); // killed before the write

    const result = await recover(stagingDir, uploader, 2);
    expect(result.aborted).toEqual(['mid/record']);
    expect(result.setAside).toEqual([]);
    expect(memory.uploads.size).toBe(0);
    expect(await readdir(stagingDir)).toEqual([]);
  });

  it('never aborts an upload a damaged record does not name', async () => {
    const other = await memory.createMultipartUpload('someone/else');
    // The id is readable, but the record's name is not that id's: it was not written for it.
    await writeFile(join(stagingDir, 'upload-ffffffffffffffffffffffffffffffff.upload.json'), `{"key":"someone/else","uploadId":"${other}"`);
    const result = await recover(stagingDir, new FileUploader(memory, { partSize: PART, concurrency: 2 }), 2);
    expect(result.aborted).toEqual([]);
    expect(result.setAside).toHaveLength(1);
    expect([...memory.uploads.keys()]).toEqual([other]);
  });

  it('writes upload records whole, through a temporary file', async () => {
    const journal = new Journal(stagingDir);
    const tracker = new UploadTracker(stagingDir, journal);
    await tracker.begun('a/key', 'upload-1');
    expect(journal.stats).toEqual({ rounds: 1, fsyncs: 2, records: 1 }); // the record, the directory
    const names = await readdir(stagingDir);
    expect(names).toHaveLength(1);
    expect(JSON.parse(await readFile(join(stagingDir, names[0]!), 'utf8'))).toEqual({ key: 'a/key', uploadId: 'upload-1' });
    await tracker.ended('upload-1');
    expect(await readdir(stagingDir)).toEqual([]);
  });

  it('uploads the journal log a killed daemon left: the latest record of each key, none that was done', async () => {
    const stats = { rounds: 0, fsyncs: 0, records: 0 };
    const log = new JournalLog(stagingDir, stats);
    const record = (key: string, data: string) => ({ key, size: data.length, metadata: { mode: '33188' }, contentType: 'text/plain' });
    await log.append(record('first', 'one'), Buffer.from('one'));
    await log.append(record('again', 'old'), Buffer.from('old'));
    const uploaded = await log.append(record('uploaded', 'done'), Buffer.from('done'));
    await log.append(record('again', 'newer'), Buffer.from('newer'));
    log.done(uploaded);
    await vi.waitFor(async () => expect((await readLogs(stagingDir)).records.map((r) => r.key)).toEqual(['first', 'again', 'again']));
    // The daemon is killed here: the log stays as it is.

    const puts = vi.spyOn(memory, 'put');
    const result = await recover(stagingDir, new FileUploader(memory, { partSize: PART, concurrency: 2 }), 2);
    expect(result.uploaded.sort()).toEqual(['again', 'first']);
    expect(result.failed).toEqual([]);
    expect(puts).toHaveBeenCalledTimes(2);
    expect(memory.objects.get('first')?.body.toString()).toBe('one');
    expect(memory.objects.get('again')?.body.toString()).toBe('newer');
    expect(memory.objects.get('again')?.metadata.mode).toBe('33188');
    expect(memory.objects.get('again')?.contentType).toBe('text/plain');
    expect(memory.objects.has('uploaded')).toBe(false);
    expect(await readdir(stagingDir)).toEqual([]);
  });

  it('ignores the torn end of a journal log, says so, and keeps what it cannot upload for the next mount', async () => {
    const log = new JournalLog(stagingDir, { rounds: 0, fsyncs: 0, records: 0 });
    await log.append({ key: 'fine', size: 4, metadata: {} }, Buffer.from('fine'));
    await log.append({ key: 'refused', size: 7, metadata: {} }, Buffer.from('refused'));
    const [name] = await readdir(stagingDir);
    // A crash in the middle of a write: a record's line and part of its bytes, never acknowledged.
    await appendFile(
      join(stagingDir, name!),
      `${JSON.stringify({ seq: 2, key: 'torn', size: 100, metadata: {}, sha256: 'x', at: 1 })}\nabc`,
    );

    faulty.fail('put', { nth: 2, code: 'AccessDenied' }); // 'refused', uploaded second (one at a time, in order)
    const uploader = new FileUploader(faulty, { partSize: PART, concurrency: 2 });
    const first = await recover(stagingDir, uploader, 1);
    expect(first.uploaded).toEqual(['fine']);
    expect(first.failed.map((f) => f.key)).toEqual(['refused']);
    expect(first.setAside).toEqual([
      expect.objectContaining({ file: join(stagingDir, name!), problem: expect.stringMatching(/last \d+ bytes are not a whole record/) }),
    ]);
    expect(memory.objects.has('torn')).toBe(false);
    expect((await readLogs(stagingDir)).records.map((r) => r.key)).toEqual(['refused']); // 'fine' is marked done

    const puts = vi.spyOn(memory, 'put');
    const second = await recover(stagingDir, uploader, 1);
    expect(second.uploaded).toEqual(['refused']);
    expect(puts).toHaveBeenCalledTimes(1); // not 'fine' again
    expect(memory.objects.get('refused')?.body.toString()).toBe('refused');
    expect(await readdir(stagingDir)).toEqual([]);
  });

  it('removes staging files without a journal record, and keeps the journaled ones', async () => {
    await writeFile(join(stagingDir, 'staging-1234-ab-1'), 'never acknowledged');
    await writeFile(join(stagingDir, 'staging-1234-ab-2'), 'journaled');
    await writeRecord(join(stagingDir, 'staging-1234-ab-2'), { key: 'k', size: 9, metadata: {} });
    expect(await removeUnjournaled(stagingDir)).toBe(1);
    expect((await readdir(stagingDir)).sort()).toEqual(['staging-1234-ab-2', 'staging-1234-ab-2.pending.json']);
  });
});
