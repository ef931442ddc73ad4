module github.com/ferrymq/ferry/bench/pool

go 1.25.0

require (
	github.com/alitto/pond/v2 v2.7.1
	github.com/ferrymq/ferry v0.0.0
	github.com/panjf2000/ants/v2 v2.12.1
)

require golang.org/x/sync v0.11.0 // indirect

replace github.com/ferrymq/ferry => ../..
