module github.com/ferrymq/ferry/bench/nngpeer

go 1.25.0
