#!/usr/bin/env node
// SPDX-License-Identifier: MIT
//
// parquet-text.mjs [--column NAME] [--skip D] FILE...
//
// Writes one column (default `text`) of each parquet FILE, row after row
// and file after file, to stdout as the records that
// `build/prepare_data --records` reads: a uint32 little-endian byte
// count, then the value's bytes as stored (no re-encoding); after the last
// row, the count 0xffffffff. --skip D leaves out the first D rows of the
// whole sequence (files and row groups before it are not read, only their
// footers). Snappy, gzip, zstd, brotli and lz4 pages are read.
//
// A missing file or column, a null value, a corrupt file or a closed
// stdout is an error: a message naming the file (and row), exit status 1,
// and no end record, so prepare_data keeps only its full shards.
// Exit status: 0 done, 1 error, 2 bad usage.

import { asyncBufferFromFile, parquetMetadataAsync, parquetRead, parquetSchema } from 'hyparquet'
import { compressors } from 'hyparquet-compressors'

const prog = 'parquet-text'
const END = 0xffffffff

// What this script finds wrong, as opposed to a failure inside the reader.
class InputError extends Error {}

function usage() {
  process.stderr.write(`usage: ${prog}.mjs [--column NAME] [--skip ROWS] FILE...\n`)
  process.exit(2)
}

function parseArgs(argv) {
  const o = { column: 'text', skip: 0, files: [] }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--column' && i + 1 < argv.length) {
      o.column = argv[++i]
    } else if (a === '--skip' && i + 1 < argv.length) {
      const v = argv[++i]
      if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(Number(v))) usage()
      o.skip = Number(v)
    } else if (a.startsWith('--')) {
      usage()
    } else {
      o.files.push(a)
    }
  }
  if (!o.files.length) usage()
  return o
}

// Write @buf to stdout, waiting while the pipe is full.
function write(buf) {
  return new Promise(resolve => {
    if (process.stdout.write(buf)) resolve()
    else process.stdout.once('drain', resolve)
  })
}

// One record per value of @rows ([[value], ...]) to stdout, in writes of
// about 8 MB; @first is the file's row index of rows[0], for messages.
async function writeRecords(rows, first) {
  let parts = []
  let bytes = 0
  for (let i = 0; i < rows.length; i++) {
    const v = rows[i][0]
    if (!(v instanceof Uint8Array)) {
      throw new InputError(`row ${first + i}: the value is ${v === null || v === undefined ?
        'null' : typeof v}, not a string`)
    }
    const len = Buffer.alloc(4)
    len.writeUInt32LE(v.length)
    parts.push(len, v)
    bytes += 4 + v.length
    if (bytes >= 8 << 20) {
      await write(Buffer.concat(parts))
      parts = []
      bytes = 0
    }
  }
  if (parts.length) await write(Buffer.concat(parts))
}

async function openFile(path, column) {
  const file = await asyncBufferFromFile(path)
  const metadata = await parquetMetadataAsync(file)
  const names = parquetSchema(metadata).children.map(c => c.element.name)
  if (!names.includes(column)) {
    throw new InputError(`no column '${column}' (it has: ${names.join(', ')})`)
  }
  return { file, metadata }
}

// Stream @path's rows from @skip on; returns the rows it holds.
async function streamFile(path, column, skip) {
  const { file, metadata } = await openFile(path, column)
  const total = Number(metadata.num_rows)
  let start = 0
  for (const rg of metadata.row_groups) {
    const end = start + Number(rg.num_rows)
    if (end > skip) {
      let rows = []
      const rowStart = Math.max(start, skip)
      await parquetRead({
        file, metadata, compressors, columns: [column], rowStart, rowEnd: end,
        parsers: { stringFromBytes: b => b },
        onComplete: r => { rows = r },
      })
      if (rows.length !== end - rowStart) {
        throw new InputError(`rows ${rowStart}..${end - 1}: read ${rows.length} values`)
      }
      await writeRecords(rows, rowStart)
    }
    start = end
  }
  if (start !== total) throw new InputError(`row groups hold ${start} rows, the footer says ${total}`)
  return total
}

async function main() {
  const o = parseArgs(process.argv.slice(2))
  let skip = o.skip
  process.stdout.on('error', e => {
    process.stderr.write(`${prog}: cannot write stdout: ${e.message}\n`)
    process.exit(1)
  })
  for (const path of o.files) {
    try {
      if (skip > 0) {
        const { metadata } = await openFile(path, o.column)
        const n = Number(metadata.num_rows)
        if (skip >= n) {
          skip -= n
          continue
        }
      }
      await streamFile(path, o.column, skip)
      skip = 0
    } catch (e) {
      const why = e instanceof InputError ? e.message
        : e && e.code === 'ENOENT' ? 'no such file'
          : `not a readable parquet file (${(e && e.message) || e})`
      process.stderr.write(`${prog}: ${path}: ${why}\n`)
      process.exit(1)
    }
  }
  if (skip > 0) {
    process.stderr.write(`${prog}: --skip ${o.skip} is past the end of the files ` +
      `(${o.skip - skip} rows)\n`)
    process.exit(1)
  }
  const end = Buffer.alloc(4)
  end.writeUInt32LE(END)
  await write(end)
}

main()
