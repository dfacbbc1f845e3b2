FROM base
CMD ["a",
