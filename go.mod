module github.com/vitbench/vitbench

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/aclements/go-moremath v0.0.0-20210112150236-f10218a38794
	github.com/go-echarts/go-echarts/v2 v2.6.7
	github.com/mattn/go-sqlite3 v1.14.53
	github.com/sugarme/gotch v0.9.1
	golang.org/x/perf v0.0.0-20260908200009-22c9c6c9d4da
	golang.org/x/sys v0.48.0
	golang.org/x/term v0.44.0
)

require github.com/stretchr/testify v1.9.0 // indirect
