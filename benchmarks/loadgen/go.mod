module wsbench/loadgen

go 1.19
