from lit_rpe.study.run import main

main()
