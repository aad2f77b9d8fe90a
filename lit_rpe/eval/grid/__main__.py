from lit_rpe.eval.grid.run import main

main()
