FROM --platform=$BUILDPLATFORM golang:1.22 as builder
