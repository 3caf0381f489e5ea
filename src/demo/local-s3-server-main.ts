/**
 * Runs the local S3 server in a process of its own (see `startLocalS3ServerProcess`): options as
 * JSON in argv[2]; reports its address over IPC; stops when the parent goes away or on SIGTERM.
 */

import { type LocalS3ServerOptions, startLocalS3Server } from './local-s3-server.js';

const options = JSON.parse(process.argv[2] ?? '{}') as LocalS3ServerOptions;
const server = await startLocalS3Server(options);
process.send?.({ endpoint: server.endpoint, port: server.port, directory: server.directory });
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  void server.close().finally(() => process.exit(0));
};
process.on('disconnect', stop);
process.on('SIGTERM', stop);
