/**
 * How a GCS "multipart upload" is put together: parts are uploaded as temporary objects, then
 * composed into the destination. One compose request takes at most 32 sources, so more parts are
 * composed in a tree: groups of 32 become intermediate objects, groups of those become the next
 * level, until one request makes the destination. Each level's requests are independent and run
 * in parallel; a tree of 10,000 parts is 3 levels (313 + 10 + 1 requests).
 *
 * Temporary objects are named after the destination key, so that aborting an upload needs no
 * state: listing `<key>.objmount-part-<uploadId>-` finds every part and intermediate object of it,
 * also after a crash. GcsStore hides these names from listings.
 */

/** Sources of one compose request. */
export const MAX_COMPOSE_SOURCES = 32;

export interface ComposeSource {
  name: string;
  /** Pinned generation: compose fails (412) if the object was replaced meanwhile. */
  generation?: string;
}

export interface ComposeStep {
  sources: ComposeSource[];
  destination: string;
}

/** The prefix of every temporary object of one upload. */
export function partPrefix(key: string, uploadId: string): string {
  return `${key}.objmount-part-${uploadId}-`;
}

export function partName(key: string, uploadId: string, partNumber: number): string {
  return `${partPrefix(key, uploadId)}${partNumber}`;
}

function intermediateName(key: string, uploadId: string, level: number, index: number): string {
  return `${partPrefix(key, uploadId)}c${level}-${index}`;
}

/** An upload id is 16 lower-case hex digits, so the pattern below cannot match a user's name by chance. */
const TEMPORARY_OBJECT = /\.objmount-part-[0-9a-f]{16}-(?:\d+|c\d+-\d+)$/;

/** Whether a key is a temporary object of an upload in progress (or of one a crash left). */
export function isTemporaryPartObject(key: string): boolean {
  return TEMPORARY_OBJECT.test(key);
}

/**
 * The compose requests that turn `parts` (in order) into `destination`, level by level; the steps
 * of one level may run at once, a level only after the one before it. The last level has one step,
 * whose destination is `destination`. `temporaries` are the intermediate objects made on the way.
 */
export function planCompose(
  key: string,
  uploadId: string,
  parts: ComposeSource[],
  maxSources = MAX_COMPOSE_SOURCES,
): { levels: ComposeStep[][]; temporaries: string[] } {
  if (parts.length === 0) throw new Error('planCompose: no parts');
  if (maxSources < 2) throw new Error('planCompose: maxSources must be at least 2');
  const levels: ComposeStep[][] = [];
  const temporaries: string[] = [];
  let current = parts;
  let level = 1;
  while (current.length > maxSources) {
    const steps: ComposeStep[] = [];
    for (let i = 0; i < current.length; i += maxSources) {
      const group = current.slice(i, i + maxSources);
      const destination = intermediateName(key, uploadId, level, steps.length);
      steps.push({ sources: group, destination });
      temporaries.push(destination);
    }
    levels.push(steps);
    current = steps.map((s) => ({ name: s.destination }));
    level += 1;
  }
  levels.push([{ sources: current, destination: key }]);
  return { levels, temporaries };
}
