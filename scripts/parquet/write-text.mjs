#!/usr/bin/env node
// SPDX-License-Identifier: MIT
//
// write-text.mjs [--row-group N] [--codec SNAPPY|UNCOMPRESSED] OUT FILE...
//
// Writes the parquet file OUT with one row per FILE, in FineWeb's shape
// for the columns kgpt reads: `id` (a string naming the row) and `text`
// (FILE's contents, UTF-8). Row groups of N rows (default 1000) and the
// codec (default SNAPPY) let the tests read files of several row groups
// and both page kinds. A test and development tool (hyparquet-writer is a
// devDependency): the FineWeb files themselves come from the dataset.
// Exit status: 0, 1 error, 2 bad usage.

import { readFileSync } from 'node:fs'
import { parquetWriteFile } from 'hyparquet-writer'

const prog = 'write-text'

function usage() {
  process.stderr.write(`usage: ${prog}.mjs [--row-group N] [--codec SNAPPY|UNCOMPRESSED] ` +
    'OUT FILE...\n')
  process.exit(2)
}

const argv = process.argv.slice(2)
let rowGroupSize = 1000
let codec = 'SNAPPY'
while (argv.length && argv[0].startsWith('--')) {
  const a = argv.shift()
  const v = argv.shift()
  if (a === '--row-group' && /^[1-9][0-9]*$/.test(v || '')) rowGroupSize = Number(v)
  else if (a === '--codec' && (v === 'SNAPPY' || v === 'UNCOMPRESSED')) codec = v
  else usage()
}
if (argv.length < 2) usage()
const [out, ...files] = argv

try {
  const text = files.map(f => readFileSync(f, 'utf8'))
  const id = files.map((f, i) => `<urn:kgpt:test:${i}>`)
  parquetWriteFile({
    filename: out,
    codec,
    rowGroupSize,
    columnData: [
      { name: 'id', data: id, type: 'STRING' },
      { name: 'text', data: text, type: 'STRING' },
    ],
  })
} catch (e) {
  process.stderr.write(`${prog}: ${out}: ${e.message}\n`)
  process.exit(1)
}
