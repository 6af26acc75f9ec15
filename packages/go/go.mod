module github.com/edge-relay/edge-relay/packages/go

go 1.19
