FROM a
  RUN   indented
	CMD tabbed
