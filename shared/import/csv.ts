import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { type CsvError, type Info, parse } from 'csv-parse';
import { OncekitError } from '../errors.js';

/** The longest record read, in bytes: a longer one almost always follows a quote that is never closed. */
export const MAX_CSV_RECORD_BYTES = 1_048_576;

/** A record longer than the reader will hold. */
export class CsvRecordTooLongError extends OncekitError {
  constructor(maxBytes: number, line: number) {
    super('csv_record_too_long', `the CSV record near line ${line} is longer than ${maxBytes} bytes; is a quote left open?`);
  }
}

/** One CSV record as read, with where it is in the file. */
export type CsvItem =
  | {
      readonly kind: 'record';
      readonly cells: string[];
      /** The line it starts on, from 1; blank lines count, a quoted field may span lines. */
      readonly line: number;
      /** Bytes of the file up to the end of this record. */
      readonly endByte: number;
    }
  | {
      /** The file ends inside a quoted field: the last record swallowed everything after its opening quote. */
      readonly kind: 'unterminated';
      readonly line: number;
      readonly endByte: number;
    };

/**
 * RFC 4180 CSV by csv-parse, streamed: quoted fields with `""` escapes, commas and line breaks inside quotes, CRLF,
 * LF or CR line ends (mixed too), a leading BOM; blank lines are skipped. Lenient where files in the wild are: a stray
 * quote inside an unquoted field is text. Memory is bounded by `maxRecordBytes`. Yields the records a chunk of the file
 * completed, in order; the consumer's pace sets the reading pace.
 */
export async function* readCsv(
  file: Readable,
  options: { readonly maxRecordBytes?: number } = {},
): AsyncGenerator<CsvItem[], void, undefined> {
  const maxRecordBytes = options.maxRecordBytes ?? MAX_CSV_RECORD_BYTES;
  let unterminated: CsvError | null = null;
  const parser = parse({
    bom: true,
    info: true,
    relax_quotes: true,
    relax_column_count: true,
    skip_empty_lines: true,
    record_delimiter: ['\r\n', '\n', '\r'],
    max_record_size: maxRecordBytes,
    // Only to learn of a quote left open at the end while keeping the records before it; anything else ends the read.
    skip_records_with_error: true,
    on_skip: (error) => {
      if (error?.code !== 'CSV_QUOTE_NOT_CLOSED') throw error;
      unterminated = error;
    },
  });
  pipeline(file, parser, () => {});
  // The line where the previous record ended, and the blank lines csv-parse had skipped by then.
  let lastLine = 0;
  let lastEmptyLines = 0;
  let endByte = 0;
  const iterator = parser[Symbol.asyncIterator]() as AsyncIterator<{ record: string[]; info: Info }>;
  try {
    let batch: CsvItem[] = [];
    for (;;) {
      let next: IteratorResult<{ record: string[]; info: Info }>;
      try {
        next = await iterator.next();
      } catch (error) {
        throw readError(error, maxRecordBytes);
      }
      if (next.done) break;
      const { record, info } = next.value;
      const line = lastLine + 1 + (info.empty_lines - lastEmptyLines);
      lastLine = line + lineBreaks(record);
      lastEmptyLines = info.empty_lines;
      endByte = info.bytes;
      batch.push({ kind: 'record', cells: record, line, endByte });
      // Everything the last chunk completed: hand it over before reading on.
      if (parser.readableLength === 0) {
        yield batch;
        batch = [];
      }
    }
    const open = unterminated as CsvError | null;
    if (open !== null) {
      const emptyLines = typeof open.empty_lines === 'number' ? open.empty_lines : lastEmptyLines;
      batch.push({ kind: 'unterminated', line: lastLine + 1 + (emptyLines - lastEmptyLines), endByte: numberOr(open.bytes, endByte) });
    }
    if (batch.length > 0) yield batch;
  } finally {
    parser.destroy();
    file.destroy();
  }
}

function readError(error: unknown, maxRecordBytes: number): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'CSV_MAX_RECORD_SIZE') return new CsvRecordTooLongError(maxRecordBytes, numberOr((error as CsvError).lines, 0));
  return error;
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === 'number' ? value : fallback;
}

/** Line breaks inside a record's cells (CRLF counts once): how many lines the record spans beyond its first. */
function lineBreaks(cells: readonly string[]): number {
  let count = 0;
  for (const cell of cells) {
    for (let i = 0; i < cell.length; i += 1) {
      const c = cell.charCodeAt(i);
      if (c === 0x0a) count += 1;
      else if (c === 0x0d) {
        count += 1;
        if (cell.charCodeAt(i + 1) === 0x0a) i += 1;
      }
    }
  }
  return count;
}

/** One CSV field for writing: quoted when it holds a comma, a quote or a line break. */
export function csvField(value: string | number | null): string {
  if (value === null) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}
