# escape=`
# syntax=docker/dockerfile:1
RUN a `
b
