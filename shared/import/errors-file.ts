import { createWriteStream, rmSync, type WriteStream } from 'node:fs';
import { csvField } from './csv.js';
import type { ImportFormat, RawRecord } from './records.js';

/**
 * The errors file's own columns (CSV) or members (JSONL), ahead of the row. An import ignores them, so an errors file
 * can be fixed and imported as it is.
 */
export const ERRORS_FILE_COLUMNS = ['recordNumber', 'error'] as const;

export function isErrorsFileColumn(name: string): boolean {
  return (ERRORS_FILE_COLUMNS as readonly string[]).includes(name);
}

/** The default errors file of an import: next to it, in its format. */
export function defaultErrorsFilePath(file: string, format: ImportFormat): string {
  return `${file}.errors.${format}`;
}

/**
 * A CSV row's own cells under `header`: the cells under an errors file's columns left out, so that importing an errors
 * file writes rows of the same shape. A short row keeps the cells it has, a long one its extra cells.
 */
export function rowCellsOf(header: readonly string[]): (cells: readonly string[]) => string[] {
  const own = header.flatMap((column, index) => (isErrorsFileColumn(column) ? [] : [index]));
  if (own.length === header.length) return (cells) => [...cells];
  return (cells) => [...own.filter((index) => index < cells.length).map((index) => cells[index] ?? ''), ...cells.slice(header.length)];
}

export interface ImportErrorRow {
  readonly recordNumber: number;
  /** Why, in words: the column or field at fault, or what the target answered. */
  readonly message: string;
  /** The record as read; null when the run ended before reading it (a leftover of an earlier run settled first). */
  readonly record: RawRecord | null;
}

/**
 * The errors file of one run: each failed row as it was, with why and its record number, rows in the order they were
 * found. CSV in, CSV out: `recordNumber,error` and the original columns (first, so a row with too few or too many cells
 * keeps them all). JSONL in, JSONL out: `{"recordNumber","error",...the line's members}`, or `"line"` holding the text
 * of a line that is not a JSON object. It is created on the first error only; a stale one from an earlier run is
 * removed at the start, so the file always describes the last run.
 */
export class ErrorsFile {
  readonly path: string;
  readonly #format: ImportFormat;
  readonly #header: readonly string[];
  readonly #rowCells: (cells: readonly string[]) => string[];
  #stream: WriteStream | null = null;
  #rows = 0;

  constructor(path: string, format: ImportFormat, header: readonly string[] | null) {
    this.path = path;
    this.#format = format;
    this.#header = header ?? [];
    this.#rowCells = rowCellsOf(this.#header);
    rmSync(path, { force: true });
  }

  get rows(): number {
    return this.#rows;
  }

  /** Appends a row; the stream buffers (error rows are few and small next to the records they describe). */
  write(row: ImportErrorRow): void {
    if (this.#stream === null) {
      this.#stream = createWriteStream(this.path, { encoding: 'utf8' });
      if (this.#format === 'csv') this.#stream.write(`${this.#csvRow('recordNumber', 'error', this.#header)}\n`);
    }
    this.#rows += 1;
    this.#stream.write(`${this.#format === 'csv' ? this.#csvLine(row) : jsonLine(row)}\n`);
  }

  #csvLine(row: ImportErrorRow): string {
    return this.#csvRow(row.recordNumber, row.message, row.record?.cells ?? []);
  }

  #csvRow(recordNumber: number | string, message: string, cells: readonly string[]): string {
    return [recordNumber, message, ...this.#rowCells(cells)].map(csvField).join(',');
  }

  async close(): Promise<void> {
    const stream = this.#stream;
    if (stream === null) return;
    this.#stream = null;
    await new Promise<void>((resolve, reject) => stream.end((error?: Error | null) => (error ? reject(error) : resolve())));
  }
}

function jsonLine(row: ImportErrorRow): string {
  const head = `{"recordNumber":${row.recordNumber},"error":${JSON.stringify(row.message)}`;
  const line = row.record?.line;
  if (line === undefined) return `${head}}`;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    value = undefined;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return `${head},"line":${JSON.stringify(line)}}`;
  if (!ERRORS_FILE_COLUMNS.some((name) => Object.hasOwn(value, name))) {
    // The line's own text after its opening brace: its members exactly as written (big numbers, escapes, order).
    const rest = line.slice(line.indexOf('{') + 1);
    return rest.trimStart().startsWith('}') ? `${head}}` : `${head},${rest}`;
  }
  // A line of an errors file: its older error is replaced; own data members only, `__proto__` as the plain member it is.
  const out: Record<string, unknown> = {};
  for (const [name, member] of Object.entries(value)) {
    if (!isErrorsFileColumn(name))
      Object.defineProperty(out, name, { value: member, enumerable: true, writable: true, configurable: true });
  }
  const members = JSON.stringify(out).slice(1);
  return members === '}' ? `${head}}` : `${head},${members}`;
}
