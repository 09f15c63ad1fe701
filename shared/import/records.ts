import { constants, createReadStream, type ReadStream } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { InvalidInputError, messageOf, OncekitError } from '../errors.js';
import { type CsvItem, readCsv } from './csv.js';

export type ImportFormat = 'jsonl' | 'csv';
export const importFormats = ['jsonl', 'csv'] as const satisfies readonly ImportFormat[];

/** The format named, else the one the file's extension says. */
export function importFormatOf(path: string, explicit?: ImportFormat): ImportFormat {
  if (explicit) return explicit;
  const extension = extname(path).toLowerCase();
  if (extension === '.csv') return 'csv';
  if (extension === '.jsonl' || extension === '.ndjson') return 'jsonl';
  throw new InvalidInputError([
    { field: '--format', reason: `cannot tell the format from "${extension || 'no extension'}"; give --format jsonl or --format csv` },
  ]);
}

/** One record of the file, before validation. */
export interface RawRecord {
  /** JSONL: the line number (blank lines count but yield nothing). CSV: the data row number, the header not counted. */
  readonly recordNumber: number;
  /** The line of the file it starts on (JSONL: its line number; CSV: a quoted field may span lines). */
  readonly lineNumber: number;
  /** JSONL: the line. */
  readonly line?: string;
  /** CSV: the cells. */
  readonly cells?: readonly string[];
  /** The record could not be read as a record at all. */
  readonly fault?: string;
}

export interface RecordSource {
  readonly format: ImportFormat;
  readonly totalBytes: number;
  /** Bytes of the file up to the end of the last record handed out. */
  bytesConsumed(): number;
  /** CSV: the header row; read by `open`, before any record. */
  readonly header: readonly string[] | null;
  /** The records, a chunk's worth at a time; the file is only read as fast as these are consumed. */
  records(): AsyncGenerator<RawRecord[]>;
  close(): void;
}

const CHUNK_BYTES = 64 * 1024;
export const MAX_LINE_BYTES = 1_048_576;

export class UnreadableFileError extends OncekitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('import_file_unreadable', message, options);
  }
}

/** The size of `path`, or an UnreadableFileError naming it: checked before anything is opened or created for it. */
export async function readableFileSize(path: string): Promise<number> {
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new UnreadableFileError(`${path} is not a file`);
    await access(path, constants.R_OK);
    return info.size;
  } catch (error) {
    if (error instanceof OncekitError) throw error;
    throw new UnreadableFileError(`cannot read ${path}: ${messageOf(error)}`, { cause: error });
  }
}

/** Opens `path` for streaming; for CSV the header row is read before this resolves. */
export async function openRecordSource(path: string, format: ImportFormat): Promise<RecordSource> {
  const totalBytes = await readableFileSize(path);
  const stream = createReadStream(path, { highWaterMark: CHUNK_BYTES });
  return format === 'csv' ? openCsv(stream, totalBytes) : openJsonl(stream, totalBytes);
}

function openJsonl(stream: ReadStream, totalBytes: number): RecordSource {
  let consumed = 0;
  return {
    format: 'jsonl',
    totalBytes,
    bytesConsumed: () => consumed,
    header: null,
    close: () => {
      stream.destroy();
    },
    async *records() {
      // The start of a line that continues in the next chunk.
      let carry: Buffer[] = [];
      let carryBytes = 0;
      let lineNumber = 0;
      let offset = 0;
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        const out: RawRecord[] = [];
        let start = 0;
        let end = chunk.indexOf(0x0a);
        while (end >= 0) {
          const bytes = carryBytes > 0 ? Buffer.concat([...carry, chunk.subarray(start, end)]) : chunk.subarray(start, end);
          carry = [];
          carryBytes = 0;
          lineNumber += 1;
          if (bytes.length > MAX_LINE_BYTES) throw lineTooLong(lineNumber);
          pushLine(out, bytes, lineNumber);
          start = end + 1;
          end = chunk.indexOf(0x0a, start);
        }
        if (start < chunk.length) {
          carry.push(chunk.subarray(start));
          carryBytes += chunk.length - start;
        }
        if (carryBytes > MAX_LINE_BYTES) throw lineTooLong(lineNumber + 1);
        offset += chunk.length;
        if (out.length > 0) {
          consumed = offset - carryBytes;
          yield out;
        }
      }
      const out: RawRecord[] = [];
      if (carryBytes > 0) pushLine(out, Buffer.concat(carry), lineNumber + 1);
      consumed = offset;
      if (out.length > 0) yield out;
    },
  };
}

function lineTooLong(lineNumber: number): UnreadableFileError {
  return new UnreadableFileError(`line ${lineNumber} is longer than ${MAX_LINE_BYTES} bytes`);
}

function pushLine(out: RawRecord[], bytes: Buffer, lineNumber: number): void {
  let raw = bytes.toString('utf8');
  if (lineNumber === 1 && raw.charCodeAt(0) === 0xfeff) raw = raw.slice(1);
  const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
  if (line.trim() === '') return;
  out.push({ recordNumber: lineNumber, lineNumber, line });
}

async function openCsv(stream: ReadStream, totalBytes: number): Promise<RecordSource> {
  const items = readCsv(stream);
  let consumed = 0;
  const close = (): void => {
    void items.return(undefined);
    stream.destroy();
  };
  // Items read along with the header, handed out first.
  let buffered: CsvItem[] = [];
  let header: string[] | undefined;
  try {
    while (header === undefined) {
      const next = await items.next();
      if (next.done) break;
      buffered = next.value;
      const first = buffered.shift();
      if (first?.kind === 'record') header = first.cells;
      else if (first?.kind === 'unterminated')
        throw new UnreadableFileError(`the CSV header on line ${first.line} opens a quote that is never closed`);
    }
  } catch (error) {
    close();
    throw error;
  }
  if (header === undefined) throw new UnreadableFileError('the CSV file is empty: it needs a header row (accountId,userId,event.key,…)');
  return {
    format: 'csv',
    totalBytes,
    bytesConsumed: () => consumed,
    header,
    close,
    async *records() {
      let recordNumber = 0;
      const number = (batch: readonly CsvItem[]): RawRecord[] =>
        batch.map((item) => {
          recordNumber += 1;
          consumed = item.endByte;
          return item.kind === 'record'
            ? { recordNumber, lineNumber: item.line, cells: item.cells }
            : {
                recordNumber,
                lineNumber: item.line,
                fault: `line ${item.line}: a quoted field opened in this record is never closed (the file ends inside quotes)`,
              };
        });
      if (buffered.length > 0) yield number(buffered);
      buffered = [];
      for await (const batch of { [Symbol.asyncIterator]: () => items }) yield number(batch);
    },
  };
}
