FROM base
ONBUILD --x RUN y
