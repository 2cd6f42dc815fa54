"""FAISS baseline for bench/mine: exact inner-product top-k with IndexFlatIP on the vectors bench/mine.ts wrote.

Run by bench/mine.ts with Debian's /usr/bin/python3 (python3-faiss, python3-numpy). Argument: one JSON object
{queries, docs, nq, nc, dim, k, threads, out_scores, out_indices}; the vector files are raw little-endian float32,
row-major, memory-mapped here. Writes the scores (float32) and indices (int64) as raw files and prints one JSON
object: {seconds_add, seconds_search, cpu_seconds, rss_before_mb, peak_rss_mb, faiss}. The RSS before the search counts the
pages of the memory-mapped vectors, touched once beforehand, so that what remains is FAISS's own memory.
"""
import json
import resource
import sys
import time

import faiss
import numpy as np

args = json.loads(sys.argv[1])
faiss.omp_set_num_threads(args["threads"])
nq, nc, dim, k = args["nq"], args["nc"], args["dim"], args["k"]
queries = np.memmap(args["queries"], dtype="<f4", mode="r", shape=(nq, dim))
docs = np.memmap(args["docs"], dtype="<f4", mode="r", shape=(nc, dim))
# Touch every page so that the vectors count in the RSS measured before the search.
checksum = float(queries.sum(dtype=np.float64) + docs.sum(dtype=np.float64))


def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


rss_before = rss_mb()
cpu_start = cpu_seconds()
start = time.perf_counter()
index = faiss.IndexFlatIP(dim)
index.add(docs)
added = time.perf_counter()
scores, indices = index.search(queries, k)
done = time.perf_counter()
cpu = cpu_seconds() - cpu_start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
scores.astype("<f4").tofile(args["out_scores"])
indices.astype("<i8").tofile(args["out_indices"])
print(json.dumps({
    "seconds_add": added - start,
    "seconds_search": done - added,
    "cpu_seconds": cpu,
    "rss_before_mb": rss_before,
    "peak_rss_mb": peak,
    "faiss": faiss.__version__,
    "checksum": checksum,
}))
