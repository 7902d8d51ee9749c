# language: sv
@criterion:tech-test-identities @needs:fhir_base @last
Egenskap: Repetitionen rör bara testidentiteter
  Repetitionen får bara skapa, ändra och visa planens testidentiteter (Skatteverkets
  testpersonnummer) och de reservnummer den själv registrerat för okända patienter. Allt
  som ändrats under repetitionen gås igenom: i den nya journalen, i integrationsbryggans
  meddelanden och i det äldre journalsystemets remisser. Scenariot körs sist.

  @id:tek-test-identities-01
  Scenario: Varje patient som repetitionen rört är en testidentitet eller ett eget reservnummer
    Givet allt som ändrats under repetitionen i den nya journalen, i bryggan och i det äldre journalsystemet
    Så är varje patient där en testidentitet ur planen eller ett reservnummer som repetitionen själv skapat
