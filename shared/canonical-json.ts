import { InvalidInputError } from './errors.js';
import { isContainer, type JsonBounds, pathOf, type Visit } from './json-walk.js';
import { formatPath } from './validation.js';

/** Bounds of every canonicalisation: deep enough for any real payload, far below what a stack or a heap would mind. */
export const CANONICAL_JSON_BOUNDS: JsonBounds = { maxDepth: 64, maxNodes: 1_000_000 };

/** What JSON.stringify leaves out of an object (and turns into null in an array). */
const omitted = (value: unknown): boolean => value === undefined || typeof value === 'function' || typeof value === 'symbol';

/**
 * JSON with object keys sorted at every depth, so equal data always gives the same text
 * (the basis of derived keys and request fingerprints). Undefined members are left out, as JSON.stringify does.
 * Built with an explicit stack (input can be nested arbitrarily deep); past `bounds` it throws an InvalidInputError
 * naming the path. The text is written directly, so a `__proto__` key is data like any other.
 */
export function canonicalJson(value: unknown, bounds: JsonBounds = CANONICAL_JSON_BOUNDS): string {
  const out: string[] = [];
  const stack: (string | Visit)[] = [{ value, key: null, parent: null, depth: 0 }];
  let nodes = 0;
  while (stack.length > 0) {
    const task = stack.pop() as string | Visit;
    if (typeof task === 'string') {
      out.push(task);
      continue;
    }
    nodes += 1;
    if (nodes > bounds.maxNodes) throw fault(task, `more than ${bounds.maxNodes} values`);
    if (task.depth > bounds.maxDepth) throw fault(task, `nested deeper than ${bounds.maxDepth} levels`);
    const current = task.value;
    if (!isContainer(current)) {
      out.push(JSON.stringify(current) ?? 'null');
      continue;
    }
    const depth = task.depth + 1;
    if (Array.isArray(current)) {
      out.push('[');
      stack.push(']');
      for (let index = current.length - 1; index >= 0; index -= 1) {
        const item: unknown = current[index];
        stack.push({ value: omitted(item) ? null : item, key: index, parent: task, depth });
        if (index > 0) stack.push(',');
      }
      continue;
    }
    const record = current as Record<string, unknown>;
    const keys = Object.keys(record)
      .sort()
      .filter((key) => !omitted(record[key]));
    out.push('{');
    stack.push('}');
    for (let index = keys.length - 1; index >= 0; index -= 1) {
      const key = keys[index] as string;
      stack.push({ value: record[key], key, parent: task, depth });
      stack.push(`${JSON.stringify(key)}:`);
      if (index > 0) stack.push(',');
    }
  }
  return out.join('');
}

function fault(visit: Visit, reason: string): InvalidInputError {
  return new InvalidInputError([{ field: formatPath(pathOf(visit)), reason }]);
}
