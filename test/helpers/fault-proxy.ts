/**
 * Starts the fault-injecting HTTP proxy (fault-proxy-main.mjs) in a process of its own, in front
 * of an S3 endpoint, and controls it: which requests fail how, and how many requests it saw.
 */

import { type ChildProcess, fork } from 'node:child_process';
import { resolve } from 'node:path';

export type FaultAction = 'delay' | 'reset' | 'reset-body' | 'truncate' | 'status' | 'hang' | 'stall';

export interface FaultRule {
  action: FaultAction;
  /** Only requests with this HTTP method. */
  method?: string;
  /** A regular expression over the decoded path and query, e.g. `partNumber=` or `^/bucket/key`. */
  path?: string;
  /** How many requests the rule applies to; every matching request when omitted. */
  times?: number;
  delayMs?: number;
  status?: number;
  /** The S3 error code of a `status` answer. */
  code?: string;
}

export interface FaultProxy {
  endpoint: string;
  /** Replaces the rules; `[]` passes everything through. */
  set(rules: FaultRule[]): Promise<void>;
  /** Resolves when a request next matches one of the rules (a hung request has reached the proxy). */
  nextMatch(): Promise<void>;
  /** Requests seen since start, matches per rule since the last `set`, and requests open now. */
  counts(): Promise<{ requests: number; matched: number[]; open: number }>;
  /** Resolves once no request is open: each answered in full, or closed by its client (a cancelled request). */
  whenIdle(): Promise<void>;
  close(): Promise<void>;
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const child: ChildProcess = fork(resolve(__dirname, 'fault-proxy-main.mjs'), [upstream], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ask = <T>(message: object, answer: string) =>
    new Promise<T>((resolveAnswer, reject) => {
      const onMessage = (reply: { type: string }) => {
        if (reply.type !== answer) return;
        child.off('message', onMessage);
        resolveAnswer(reply as T);
      };
      child.on('message', onMessage);
      if (child.exitCode !== null) reject(new Error(`the fault proxy exited with code ${child.exitCode}`));
      if (Object.keys(message).length > 0) child.send(message);
    });
  const { port } = await Promise.race([
    ask<{ port: number }>({}, 'listening'),
    new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`the fault proxy exited with code ${code}`)))),
  ]);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    set: async (rules) => {
      await ask({ type: 'set', rules }, 'ok');
    },
    nextMatch: () => ask({}, 'matched').then(() => undefined),
    counts: async () => (await ask<{ counts: { requests: number; matched: number[]; open: number } }>({ type: 'counts' }, 'counts')).counts,
    whenIdle: () => ask({ type: 'whenIdle' }, 'idle').then(() => undefined),
    close: () =>
      new Promise<void>((done) => {
        if (child.exitCode !== null) return done();
        child.once('exit', () => done());
        child.kill('SIGTERM');
      }),
  };
}
