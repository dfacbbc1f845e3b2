# escape=q
FROM a
