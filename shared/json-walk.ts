import { InvalidInputError } from './errors.js';
import { formatPath } from './validation.js';

/** How far a walk over user input may go: containers nested deeper than `maxDepth`, or more than `maxNodes` values, are refused. */
export interface JsonBounds {
  readonly maxDepth: number;
  readonly maxNodes: number;
}

export type JsonPath = readonly (string | number)[];

export interface JsonFault {
  readonly path: JsonPath;
  readonly reason: string;
}

/** A value seen by a walk, with a link to its parent so a path is built only when it is needed. */
export interface Visit {
  readonly value: unknown;
  readonly key: string | number | null;
  readonly parent: Visit | null;
  readonly depth: number;
}

export function pathOf(visit: Visit): (string | number)[] {
  const path: (string | number)[] = [];
  for (let at: Visit | null = visit; at !== null && at.key !== null; at = at.parent) path.push(at.key);
  return path.reverse();
}

/** Containers a walk descends into: arrays and objects other than Dates. */
export function isContainer(value: unknown): value is object {
  return value !== null && typeof value === 'object' && !(value instanceof Date);
}

/**
 * Walks `root` depth first with an explicit stack (never recursion, so no input can overflow the call stack), in key
 * order for objects. `check` may return a reason to stop at a value; the walk also stops past the bounds.
 */
export function findJsonFault(
  root: unknown,
  bounds: JsonBounds,
  check?: (value: unknown, parent: unknown) => string | null,
): JsonFault | null {
  const stack: Visit[] = [{ value: root, key: null, parent: null, depth: 0 }];
  let nodes = 0;
  while (stack.length > 0) {
    const visit = stack.pop() as Visit;
    nodes += 1;
    if (nodes > bounds.maxNodes) return { path: pathOf(visit), reason: `more than ${bounds.maxNodes} values` };
    if (visit.depth > bounds.maxDepth) return { path: pathOf(visit), reason: `nested deeper than ${bounds.maxDepth} levels` };
    if (check) {
      const reason = check(visit.value, visit.parent?.value);
      if (reason !== null) return { path: pathOf(visit), reason };
    }
    if (!isContainer(visit.value)) continue;
    const depth = visit.depth + 1;
    if (Array.isArray(visit.value)) {
      for (let index = visit.value.length - 1; index >= 0; index -= 1)
        stack.push({ value: visit.value[index], key: index, parent: visit, depth });
    } else {
      const record = visit.value as Record<string, unknown>;
      const keys = Object.keys(record);
      for (let index = keys.length - 1; index >= 0; index -= 1) {
        const key = keys[index] as string;
        stack.push({ value: record[key], key, parent: visit, depth });
      }
    }
  }
  return null;
}

/** Throws an InvalidInputError naming the field (under `field`, e.g. `body`) when `root` is past the bounds. */
export function assertJsonBounds(root: unknown, bounds: JsonBounds, field?: string): void {
  const fault = findJsonFault(root, bounds);
  if (fault)
    throw new InvalidInputError([{ field: formatPath(field === undefined ? fault.path : [field, ...fault.path]), reason: fault.reason }]);
}
