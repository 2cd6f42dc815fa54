/**
 * The data layer: reading and writing record files (JSONL, JSON, CSV/TSV, Parquet), datasets'
 * train_test_split with NumPy's permutation, and converting training data between the formats of
 * sentence-transformers, ms-swift, FlagEmbedding and BEIR.
 */
export { DataError, type DataLocation, type OnError } from './jsonl.js';
export {
  RECORD_FORMATS,
  RecordReader,
  SkipLog,
  formatOf,
  outputFormatOf,
  readAllRecords,
  readRecords,
  writeRecords,
  writeRecordsAsync,
  type DataRecord,
  type OutputFormat,
  type ReadOptions,
  type RecordFormat,
  type WriteOptions,
} from './records.js';
export { inferColumnType, type ParquetColumnType, type ParquetEncoderOptions } from './parquet.js';
export { pythonFloatRepr, pythonJsonDumps } from './python_json.js';
export { NumpyGenerator, PCG64, SeedSequence, defaultRng, type Seed } from './numpy_random.js';
export { SplitError, parseSplitSize, splitIndices, splitSizes, trainTestSplit, type Split, type SplitIndices, type SplitOptions, type SplitSize } from './split.js';
export {
  EXAMPLE_FORMATS,
  EXAMPLE_FORMAT_NAMES,
  exampleDecoder,
  exampleEncoder,
  type EncoderOptions,
  type ExampleFormat,
  type Located,
  type RetrievalExample,
} from './examples.js';
export { BeirWriter, locateBeir, readBeir, type BeirReadOptions } from './beir.js';
export { convertFile, convertRecords, type ConvertOptions, type ConvertReport } from './convert.js';
export { WEAK_PAIR_DEFAULTS, WEAK_PAIR_MODES, WeakPairMaker, textUnits, weakPairs, type WeakPair, type WeakPairMode, type WeakPairOptions } from './weak_pairs.js';
