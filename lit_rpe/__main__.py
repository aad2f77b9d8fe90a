from lit_rpe.training.cli import main

main()
