import { createWriteStream, rmSync, type WriteStream } from 'node:fs';
import { csvField } from './csv.js';

/** The target's error-file columns (bulk import "Errors file"). */
export const ERRORS_FILE_HEADER = 'recordNumber,message,apiErrorCode,statusCode';

export interface ImportErrorRow {
  readonly recordNumber: number;
  readonly message: string;
  /** Only for errors that came from the target. */
  readonly apiErrorCode?: string | null;
  readonly statusCode?: number | null;
}

/**
 * The errors file of one run, in the target's shape, rows in the order they were found. It is created on the first
 * error only; a stale one from an earlier run is removed at the start, so the file always describes the last run.
 */
export class ErrorsFile {
  readonly path: string;
  #stream: WriteStream | null = null;
  #rows = 0;

  constructor(path: string) {
    this.path = path;
    rmSync(path, { force: true });
  }

  get rows(): number {
    return this.#rows;
  }

  /** Appends a row; the stream buffers (error rows are few and small next to the records they describe). */
  write(row: ImportErrorRow): void {
    if (this.#stream === null) {
      this.#stream = createWriteStream(this.path, { encoding: 'utf8' });
      this.#stream.write(`${ERRORS_FILE_HEADER}\n`);
    }
    this.#rows += 1;
    const text = [row.recordNumber, row.message, row.apiErrorCode ?? null, row.statusCode ?? null].map(csvField).join(',');
    this.#stream.write(`${text}\n`);
  }

  async close(): Promise<void> {
    const stream = this.#stream;
    if (stream === null) return;
    this.#stream = null;
    await new Promise<void>((resolve, reject) => stream.end((error?: Error | null) => (error ? reject(error) : resolve())));
  }
}
