import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { InvalidInputError, OncekitError } from '../errors.js';
import { CsvParser } from './csv.js';

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
  /** Bytes read so far (ahead of the records handed out by at most one chunk). */
  bytesRead(): number;
  /** CSV: the header row; read by `open`, before any record. */
  readonly header: readonly string[] | null;
  /** The records, a chunk's worth at a time; the file is only read as fast as these are consumed. */
  records(): AsyncGenerator<RawRecord[]>;
  close(): void;
}

const CHUNK_BYTES = 64 * 1024;
const MAX_LINE_CHARS = 1_048_576;

export class UnreadableFileError extends OncekitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('import_file_unreadable', message, options);
  }
}

/** Opens `path` for streaming; for CSV the header row is read before this resolves. */
export async function openRecordSource(path: string, format: ImportFormat): Promise<RecordSource> {
  let totalBytes: number;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new UnreadableFileError(`${path} is not a file`);
    totalBytes = info.size;
  } catch (error) {
    if (error instanceof OncekitError) throw error;
    throw new UnreadableFileError(`cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const stream = createReadStream(path, { encoding: 'utf8', highWaterMark: CHUNK_BYTES });
  const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<string>;
  const nextChunk = async (): Promise<string | null> => {
    const next = await chunks.next();
    return next.done ? null : next.value;
  };
  const bytesRead = (): number => stream.bytesRead;
  const close = (): void => {
    stream.destroy();
  };
  return format === 'csv' ? openCsv(nextChunk, totalBytes, bytesRead, close) : openJsonl(nextChunk, totalBytes, bytesRead, close);
}

function openJsonl(nextChunk: () => Promise<string | null>, totalBytes: number, bytesRead: () => number, close: () => void): RecordSource {
  return {
    format: 'jsonl',
    totalBytes,
    bytesRead,
    header: null,
    close,
    async *records() {
      let carry = '';
      let lineNumber = 0;
      let first = true;
      for (let chunk = await nextChunk(); chunk !== null; chunk = await nextChunk()) {
        if (first && chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
        first = false;
        const out: RawRecord[] = [];
        let start = 0;
        let end = chunk.indexOf('\n');
        while (end >= 0) {
          const line = carry + chunk.slice(start, end);
          carry = '';
          lineNumber += 1;
          pushLine(out, line, lineNumber);
          start = end + 1;
          end = chunk.indexOf('\n', start);
        }
        carry += chunk.slice(start);
        if (carry.length > MAX_LINE_CHARS)
          throw new UnreadableFileError(`line ${lineNumber + 1} is longer than ${MAX_LINE_CHARS} characters`);
        if (out.length > 0) yield out;
      }
      if (carry.length > 0) {
        const out: RawRecord[] = [];
        pushLine(out, carry, lineNumber + 1);
        if (out.length > 0) yield out;
      }
    },
  };
}

function pushLine(out: RawRecord[], raw: string, recordNumber: number): void {
  const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
  if (line.trim() === '') return;
  out.push({ recordNumber, line });
}

async function openCsv(
  nextChunk: () => Promise<string | null>,
  totalBytes: number,
  bytesRead: () => number,
  close: () => void,
): Promise<RecordSource> {
  const parser = new CsvParser();
  // Records parsed along with the header, handed out first.
  let buffered: string[][] = [];
  let ended = false;
  let unterminatedQuote = false;
  while (buffered.length === 0 && !ended) {
    const chunk = await nextChunk();
    if (chunk === null) {
      const end = parser.end();
      buffered = end.records;
      unterminatedQuote = end.unterminatedQuote;
      ended = true;
    } else buffered = parser.push(chunk);
  }
  const header = buffered.shift();
  if (header === undefined) throw new UnreadableFileError('the CSV file is empty: it needs a header row (accountId,userId,event.key,…)');
  return {
    format: 'csv',
    totalBytes,
    bytesRead,
    header,
    close,
    async *records() {
      let recordNumber = 0;
      const number = (rows: string[][]): RawRecord[] =>
        rows.map((cells) => {
          recordNumber += 1;
          return { recordNumber, cells };
        });
      // The file's last record swallowed everything after an opening quote: report it rather than import it.
      const finalRecords = (rows: string[][]): RawRecord[] => {
        const last = number(rows);
        const broken = last[last.length - 1];
        if (unterminatedQuote && broken) {
          last[last.length - 1] = {
            recordNumber: broken.recordNumber,
            fault: 'a quoted field is never closed (the file ends inside quotes)',
          };
        }
        return last;
      };
      if (buffered.length > 0) yield ended ? finalRecords(buffered) : number(buffered);
      buffered = [];
      while (!ended) {
        const chunk = await nextChunk();
        if (chunk === null) {
          const end = parser.end();
          ended = true;
          unterminatedQuote = end.unterminatedQuote;
          const last = finalRecords(end.records);
          if (last.length > 0) yield last;
        } else {
          const rows = parser.push(chunk);
          if (rows.length > 0) yield number(rows);
        }
      }
    },
  };
}
