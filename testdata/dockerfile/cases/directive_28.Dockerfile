# escape=`
COPY --from=a\b x y
