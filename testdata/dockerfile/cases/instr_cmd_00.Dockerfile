FROM base
CMD echo hi
