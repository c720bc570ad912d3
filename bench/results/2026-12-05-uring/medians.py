import os,json,glob,statistics as st,sys,collections
d=collections.defaultdict(list)
for f in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)),'%s_*.json'%sys.argv[1]))):
    run={}
    for line in open(f):
        line=line.strip()
        if not line.startswith('{'): continue
        j=json.loads(line)
        k=(j['workload'],j['threads'],j['engine'])
        run[k]=j
        d[k].append(j)
    # same-run ratios
    for (w,t,e),j in sorted(run.items()):
        if e=='ringcask-uring':
            m=run.get((w,t,'ringcask-mmap')); l=run.get((w,t,'leveldb'))
            print(f"{f.split('/')[-1]} {w}@{t}: uring {j['ops_per_sec']:.0f}/s p50 {j['p50_us']:.0f} p99 {j['p99_us']:.0f} | mmap {m['ops_per_sec']:.0f}/s p50 {m['p50_us']:.0f} p99 {m['p99_us']:.0f} | leveldb {l['ops_per_sec']:.0f}/s p99 {l['p99_us']:.0f} | u/m {j['ops_per_sec']/m['ops_per_sec']:.2f} u/L {j['ops_per_sec']/l['ops_per_sec']:.2f} m/L {m['ops_per_sec']/l['ops_per_sec']:.2f}")
print("medians:")
for k in sorted(d):
    v=d[k]
    print(k, "n=%d"%len(v), "ops/s %.0f"%st.median([x['ops_per_sec'] for x in v]), "p50 %.0f"%st.median([x['p50_us'] for x in v]), "p99 %.0f"%st.median([x['p99_us'] for x in v]), "fsyncs/op %.2f"%st.median([x['fsyncs']/max(1,x['ops']) for x in v]))
