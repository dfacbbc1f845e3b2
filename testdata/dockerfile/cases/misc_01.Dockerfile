FrOm a
RuN x
